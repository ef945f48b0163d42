"""Job attempts: which worker ran each attempt of a job, on which device, and how it ended; and the
device every worker declares.

Revision ID: 0006_job_attempts
Revises: 0005_sessions
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_job_attempts"
down_revision = "0005_sessions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("device", sa.String(40), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.UniqueConstraint("job_id", "number", name="uq_job_attempts_job_number"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id"])
    op.create_index("ix_job_attempts_worker", "job_attempts", ["worker"])
    # Attempts made before this revision have no record of their worker: nothing is invented for them.
    with op.batch_alter_table("workers") as workers:
        # Workers beating before this revision ran the one queue, on whatever they had: shown as cpu
        # until their next heartbeat rewrites the row.
        workers.add_column(sa.Column("device", sa.String(40), nullable=False, server_default="cpu"))


def downgrade() -> None:
    with op.batch_alter_table("workers") as workers:
        workers.drop_column("device")
    op.drop_index("ix_job_attempts_worker", "job_attempts")
    op.drop_index("ix_job_attempts_job_id", "job_attempts")
    op.drop_table("job_attempts")
