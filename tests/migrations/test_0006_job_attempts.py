"""Revision 0006_job_attempts on both backends: rows from before it survive, and it goes back."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.core.db import migrate
from app.core.tables import Base
from tests.migrations.conftest import downgrade


def test_0006_keeps_earlier_rows_matches_the_orm_and_goes_back(empty_database: str) -> None:
    migrate(empty_database, "0004_model_registry")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            # A worker beating and a job it runs, written by the schema before this revision.
            connection.execute(
                text(
                    "INSERT INTO jobs (id, task, model, status, config, step, total_steps, latest_metrics,"
                    " cancel_requested, attempts, crashes, queue, created_at, updated_at) VALUES (1,"
                    " 'palindrome', 'rnn', 'running', '{}', 0, 10, '{}', false, 1, 0, 'rnnlab',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO workers (name, hostname, pid, queue, current_job_id, started_at,"
                    " heartbeat_at) VALUES ('host:7', 'host', 7, 'rnnlab', 1, CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
        migrate(empty_database)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            # The old worker reads as a CPU worker until its next heartbeat rewrites the row.
            assert connection.execute(text("SELECT name, device FROM workers")).all() == [("host:7", "cpu")]
            # Nothing is invented for attempts made before the revision.
            assert connection.execute(text("SELECT count(*) FROM job_attempts")).scalar() == 0
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO job_attempts (job_id, number, worker, device, started_at)"
                    " VALUES (1, 1, 'host:7', 'cpu', CURRENT_TIMESTAMP)"
                )
            )
        indexes = {index["name"] for index in inspect(engine).get_indexes("job_attempts")}
        assert {"ix_job_attempts_job_id", "ix_job_attempts_worker"} <= indexes

        downgrade(empty_database, "0004_model_registry")
        after = inspect(engine)
        assert "job_attempts" not in after.get_table_names()
        assert "device" not in {column["name"] for column in after.get_columns("workers")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM workers")).all() == [("host:7",)]
        migrate(empty_database)  # and forward again
    finally:
        engine.dispose()
