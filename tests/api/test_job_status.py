"""The job state machine, and the database and the API holding to exactly its statuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import JSON, column, insert, inspect, table
from sqlalchemy.exc import IntegrityError

from app.core.db import engine_for
from app.core.job_status import FINISHED, TRANSITIONS, IllegalTransition, JobStatus, check_transition, sources
from app.core.settings import Settings

# The jobs table as the migrations made it, without the ORM's enum type in the way: what is
# checked below is the database's own constraint.
JOBS = table(
    "jobs",
    column("task"),
    column("model"),
    column("status"),
    column("config", JSON),
    column("total_steps"),
    column("latest_metrics", JSON),
    column("created_at"),
    column("updated_at"),
)


def test_moves() -> None:
    assert sources(JobStatus.RUNNING) == {JobStatus.QUEUED}
    assert sources(JobStatus.QUEUED) == {JobStatus.RUNNING}
    assert sources(JobStatus.CANCELLED) == {JobStatus.QUEUED, JobStatus.RUNNING}
    assert sources(JobStatus.FAILED) == {JobStatus.RUNNING}  # the outbox keeps an unsent job queued
    assert sources(JobStatus.SUCCEEDED) == {JobStatus.RUNNING}
    assert set(TRANSITIONS) == set(JobStatus)
    assert all(not TRANSITIONS[status] for status in FINISHED)
    with pytest.raises(IllegalTransition, match="from succeeded to queued"):
        check_transition(JobStatus.SUCCEEDED, JobStatus.QUEUED)


def insert_job(settings: Settings, status: str) -> None:
    """Insert a job with `status` in a transaction that is rolled back whatever happens."""
    now = datetime.now(UTC)
    row = {"task": "palindrome", "model": "lstm", "status": status, "config": {}, "total_steps": 1}
    with engine_for(settings.resolved_database_url).connect() as conn, conn.begin() as transaction:
        try:
            conn.execute(insert(JOBS).values(**row, latest_metrics={}, created_at=now, updated_at=now))
        finally:
            transaction.rollback()


def test_migrated_database_holds_exactly_the_enum(settings: Settings) -> None:
    """A status added to or removed from `JobStatus` without a migration fails here."""
    for status in JobStatus:
        insert_job(settings, status.value)
    with pytest.raises(IntegrityError, match="ck_jobs_status|CHECK constraint"):
        insert_job(settings, "paused")

    checks = inspect(engine_for(settings.resolved_database_url)).get_check_constraints("jobs")
    (constraint,) = [c for c in checks if c["name"] == "ck_jobs_status"]
    # SQLite gives back the SQL as written, PostgreSQL as `status = ANY (ARRAY['queued'::varchar, ...])`.
    assert set(re.findall(r"'(\w+)'", constraint["sqltext"])) == {status.value for status in JobStatus}


def test_openapi_lists_the_statuses(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["JobStatus"]["enum"] == [status.value for status in JobStatus]
    job_out = schema["components"]["schemas"]["JobOut"]["properties"]["status"]
    assert job_out == {"$ref": "#/components/schemas/JobStatus"}
    assert client.get("/jobs", params={"status": "paused"}).status_code == 422
