"""Supervision: the jobs outbox (`queue`, `dispatched_at`), dead-worker counts (`crashes`), heartbeats.

Revision ID: 0003_supervision
Revises: 0002_experiments
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_supervision"
down_revision = "0002_experiments"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("dispatched_at", TS, nullable=True))
        jobs.add_column(sa.Column("crashes", sa.Integer, nullable=False, server_default="0"))
        # Jobs stored before this revision went to the default queue.
        jobs.add_column(sa.Column("queue", sa.String(200), nullable=False, server_default="rnnlab"))
    # Jobs stored before the outbox were sent when they were created: the sweep must not send them again.
    op.execute("UPDATE jobs SET dispatched_at = created_at")
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("queue", sa.String(200), nullable=False, index=True),
        sa.Column("current_job_id", sa.Integer, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("queue")
        jobs.drop_column("crashes")
        jobs.drop_column("dispatched_at")
