"""Revision 0002_experiments on both backends: the schema it builds is the ORM's, and it goes back."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.core.db import migrate
from app.core.tables import Base
from tests.migrations.conftest import downgrade


def test_upgrade_matches_the_orm_and_downgrade_removes_it(empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        jobs = inspect(engine)
        assert "experiments" in jobs.get_table_names()
        assert any(fk["referred_table"] == "experiments" for fk in jobs.get_foreign_keys("jobs"))
        assert "ix_jobs_experiment_id" in {index["name"] for index in jobs.get_indexes("jobs")}

        downgrade(empty_database, "0001")
        after = inspect(engine)
        assert "experiments" not in after.get_table_names()
        assert "experiment_id" not in {column["name"] for column in after.get_columns("jobs")}
        migrate(empty_database)  # and forward again
    finally:
        engine.dispose()
