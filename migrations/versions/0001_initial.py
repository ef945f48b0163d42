"""Initial schema: datasets, jobs, metrics, samples, checkpoints; the built-in dataset.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def builtin_corpus() -> tuple[str, str]:
    """(name, text) of the built-in dataset: the pydoc topic texts joined.

    A copy of app/services/builtin.py as it was when this revision was written, not an import of it: a
    revision is a frozen snapshot, so a later change to the app's built-in dataset must not change what
    upgrading an empty database to 0001 inserts (a new dataset would come in a new revision).
    """
    from pydoc_data.topics import topics

    return "python-docs (pydoc_data.topics)", "\n\n".join(topics.values())


def upgrade() -> None:
    datasets = op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("characters", sa.Integer, nullable=False),
        sa.Column("vocab", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(20), nullable=False, index=True),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=True),
        sa.Column("resume_from", sa.Integer, nullable=True),
        sa.Column("latest_checkpoint_id", sa.Integer, nullable=True),
        sa.Column("best_checkpoint_id", sa.Integer, nullable=True),
        sa.Column("step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("steps_per_second", sa.Float, nullable=True),
        sa.Column("latest_metrics", sa.JSON, nullable=False),
        sa.Column("best_val_loss", sa.Float, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_token", sa.String(64), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="ck_jobs_status"
        ),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("job_id", "name", "step", name="uq_metrics_job_name_step"),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("temperature", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("job_id", "step", "temperature", name="uq_samples_job_step_temp"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("model_type", sa.String(40), nullable=False),
        sa.Column("model_config", sa.JSON, nullable=False),
        sa.Column("train_config", sa.JSON, nullable=False),
        sa.Column("vocab", sa.JSON, nullable=True),
        sa.Column("is_best", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_final", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("val_loss", sa.Float, nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),
    )
    op.create_index("ix_checkpoints_job_id", "checkpoints", ["job_id"])

    name, text = builtin_corpus()
    op.bulk_insert(
        datasets,
        [
            {
                "name": name,
                "text": text,
                "characters": len(text),
                "vocab": "".join(sorted(set(text))),
                "size_bytes": len(text.encode("utf-8")),
                "builtin": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    for table in ("checkpoints", "samples", "metrics", "jobs", "datasets"):
        op.drop_table(table)
