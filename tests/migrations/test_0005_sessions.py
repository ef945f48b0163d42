"""Revision 0005_sessions on both backends: the table it builds is the ORM's, a state's bytes come
back bitwise, and it goes back."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from app.core.db import migrate
from app.core.tables import ModelSession, utcnow
from tests.migrations.conftest import downgrade


def test_the_sessions_table_stores_a_state_bitwise_and_goes_back(empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        tables = inspect(engine)
        assert {"ix_sessions_owner", "ix_sessions_last_used_at"} <= {
            index["name"] for index in tables.get_indexes("sessions")
        }
        state = bytes(range(256)) * 16  # every byte value, NULs included
        with Session(engine) as session:
            now = utcnow()
            clamps = [{"layer": 0, "unit": 1, "value": 0.1, "steps": 2}]
            session.add(
                ModelSession(
                    id="ab" * 16,
                    owner="o" * 64,
                    checkpoint_id=1,
                    model=None,
                    state=state,
                    dtype="float32",
                    num_layers=2,
                    hidden_size=128,
                    characters=3,
                    clamps=clamps,
                    version=1,
                    created_at=now,
                    last_used_at=now,
                )
            )
            session.commit()
        with Session(engine) as session:
            row = session.get(ModelSession, "ab" * 16)
            assert row is not None and row.state == state and row.clamps[0]["value"] == 0.1

        downgrade(empty_database, "0004_model_registry")
        assert "sessions" not in inspect(engine).get_table_names()
        migrate(empty_database)  # and forward again
    finally:
        engine.dispose()
