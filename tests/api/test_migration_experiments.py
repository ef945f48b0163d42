"""Revision 0002_experiments on both backends: the schema it builds is the ORM's, and it goes back."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import MIGRATIONS_DIR, migrate
from app.tables import Base
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    import psycopg

    name = f"rnnlab_migration_{uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    request.addfinalizer(lambda: _drop(name))
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["url"] = empty_database
        command.downgrade(config, "0001")
        after = inspect(engine)
        assert "experiments" not in after.get_table_names()
        assert "experiment_id" not in {column["name"] for column in after.get_columns("jobs")}
        migrate(empty_database)  # and forward again
    finally:
        engine.dispose()
