"""`JobRecorder`, the loop's callbacks for a job: the heartbeat in `on_step`, `should_stop` reading it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.job_status import JobStatus
from app.core.settings import Settings
from app.services import lease
from tests.conftest import TINY_PALINDROME
from worker.recorder import JobRecorder


def _job(client: TestClient, job_id: int) -> dict[str, Any]:
    return client.get(f"/jobs/{job_id}").json()


@pytest.fixture
def claimed(client: TestClient, settings: Settings) -> Iterator[tuple[int, str]]:
    """A job held by this test as a worker would hold it; settled afterwards, so that no running job
    is left in the shared database for other tests' sweeps to find."""
    job_id = client.post("/train", json=TINY_PALINDROME | {"train_steps": 100}).json()["id"]
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as session:
        token = lease.claim(session, job_id, lease_seconds=120)
    assert token is not None
    yield job_id, token
    with sessions() as session:
        lease.finish(session, job_id, token, status=JobStatus.CANCELLED)


def test_the_heartbeat_reports_the_step_the_loop_gives_and_reads_a_cancel(
    client: TestClient, settings: Settings, claimed: tuple[int, str]
) -> None:
    job_id, token = claimed
    sessions = sessionmaker_for(settings.resolved_database_url)
    recorder = JobRecorder(sessions, job_id, token, start_step=10, poll_seconds=0)
    assert not recorder.should_stop()  # before the first step, nothing has been asked of the database

    for step in (11, 12, 13):  # a run resumed at step 10, as the loop calls it
        recorder.on_step(step)
    job = _job(client, job_id)
    assert job["step"] == 13 and job["steps_per_second"] > 0
    assert not recorder.should_stop() and not recorder.should_stop()  # asking twice changes nothing

    client.post(f"/jobs/{job_id}/cancel")
    assert not recorder.should_stop()  # the cancel is read by the next heartbeat, not by the question
    recorder.on_step(14)
    assert recorder.should_stop() and recorder.cancelled and not recorder.interrupted
    assert _job(client, job_id)["step"] == 14


def test_a_shutdown_stops_the_loop_before_its_next_step(
    client: TestClient, settings: Settings, claimed: tuple[int, str]
) -> None:
    job_id, token = claimed
    sessions = sessionmaker_for(settings.resolved_database_url)
    shutting_down = threading.Event()
    recorder = JobRecorder(sessions, job_id, token, start_step=0, interrupted=shutting_down.is_set)
    assert not recorder.should_stop()
    shutting_down.set()
    # Seen at once, without waiting for a heartbeat: should_stop reads the flag itself.
    assert recorder.should_stop() and recorder.interrupted and not recorder.cancelled
    assert _job(client, job_id)["step"] == 0  # and nothing was written
