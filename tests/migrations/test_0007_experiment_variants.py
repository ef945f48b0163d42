"""Revision 0007_experiment_variants on both backends: an earlier experiment has no variants, the
schema is the ORM's, and it goes back."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.core.db import migrate
from app.core.tables import Base
from tests.migrations.conftest import downgrade


def test_0007_leaves_earlier_experiments_without_variants_and_goes_back(empty_database: str) -> None:
    migrate(empty_database, "0006_job_attempts")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO experiments (id, name, task, base_config, sweep, created_at) VALUES"
                    " (1, 'before', 'palindrome', '{}', '{\"seed\": [0, 1]}', CURRENT_TIMESTAMP)"
                )
            )
        migrate(empty_database)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            assert connection.execute(text("SELECT name, variants FROM experiments")).all() == [
                ("before", None)
            ]
        downgrade(empty_database, "0006_job_attempts")
        assert "variants" not in {column["name"] for column in inspect(engine).get_columns("experiments")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM experiments")).scalar_one() == "before"
        migrate(empty_database)  # and forward again
    finally:
        engine.dispose()
