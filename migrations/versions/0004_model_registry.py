"""Model registry: names for checkpoints, with immutable versions, movable aliases and their history.

Revision ID: 0004_model_registry
Revises: 0003_supervision
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_model_registry"
down_revision = "0003_supervision"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _model_id() -> sa.Column[int]:
    return sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_id(),
        sa.Column("version", sa.Integer, nullable=False),
        # No ON DELETE: a checkpoint that a version names cannot be deleted (retention skips it).
        sa.Column("checkpoint_id", sa.Integer, sa.ForeignKey("checkpoints.id"), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_index("ix_model_versions_checkpoint_id", "model_versions", ["checkpoint_id"])
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_id(),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("model_id", "alias", name="uq_model_aliases_model_alias"),
    )
    op.create_index("ix_model_aliases_model_id", "model_aliases", ["model_id"])
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_id(),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("old_checkpoint_id", sa.Integer, nullable=True),
        sa.Column("new_checkpoint_id", sa.Integer, nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_model_events_model_id", "model_events", ["model_id"])
    op.create_index("ix_model_events_at", "model_events", ["at"])


def downgrade() -> None:
    for table in ("model_events", "model_aliases", "model_versions", "registered_models"):
        op.drop_table(table)
