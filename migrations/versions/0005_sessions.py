"""Sessions: a text model's state kept between requests (POST /sessions).

Revision ID: 0005_sessions
Revises: 0004_model_registry
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_sessions"
down_revision = "0004_model_registry"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("checkpoint_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("num_layers", sa.Integer, nullable=False),
        sa.Column("hidden_size", sa.Integer, nullable=False),
        sa.Column("characters", sa.Integer, nullable=False),
        sa.Column("clamps", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=False),
    )
    op.create_index("ix_sessions_owner", "sessions", ["owner"])
    op.create_index("ix_sessions_last_used_at", "sessions", ["last_used_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_last_used_at", table_name="sessions")
    op.drop_index("ix_sessions_owner", table_name="sessions")
    op.drop_table("sessions")
