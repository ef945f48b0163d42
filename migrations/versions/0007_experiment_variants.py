"""Experiment variants: named sets of training fields, one arm each, crossed with the sweep.

Revision ID: 0007_experiment_variants
Revises: 0006_job_attempts
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_experiment_variants"
down_revision = "0006_job_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: an experiment made before has no variants, which is what NULL says.
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("variants", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("variants")
