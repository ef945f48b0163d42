"""Experiments: a sweep over training configs whose grid points are ordinary jobs.

Revision ID: 0002_experiments
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_experiments"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("base_config", sa.JSON, nullable=False),
        sa.Column("sweep", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Batch mode: SQLite cannot add a foreign key with a plain ALTER TABLE (PostgreSQL ignores batch).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("experiment_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_jobs_experiment_id", "experiments", ["experiment_id"], ["id"])
        batch.create_index("ix_jobs_experiment_id", ["experiment_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_experiment_id")
        batch.drop_constraint("fk_jobs_experiment_id", type_="foreignkey")
        batch.drop_column("experiment_id")
    op.drop_table("experiments")
