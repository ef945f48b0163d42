"""A job that outlives Redis's visibility timeout runs once.

Redis hands a delivered task that is not acknowledged within `RNNLAB_BROKER_VISIBILITY_TIMEOUT` to
another worker; a worker acknowledges a job only after running it (acks_late), so any job longer
than the timeout is delivered a second time while it runs. Here the timeout is 2 s: worker A runs an
endless job, and worker B, started after the timeout has passed, restores the unacknowledged task
at its first poll and receives it. The lease (app/services/lease.py) makes B skip it: one attempt,
on A, and one metric timeline.

On a throwaway Redis: a restoring worker scans the whole database's unacknowledged tasks, and on
the shared server those would be other test runs'.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import AUTH, start_worker, stop_process, wait_for
from tests.faults.services import ThrowawayRedis
from tests.faults.test_faults import (
    ENDLESS,
    FAULT_ENV,
    _assert_one_timeline,
    _cancel,
    _settings,
    _wait_for_progress,
    postgres_database,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.slow  # two real workers on a throwaway Redis

VISIBILITY_S = 2
# Longer than the fault tests' 30 s: on two shared, loaded cores a job's first steps (torch's import
# included) can take that long, and what is tested here is the broker's redelivery, not the lease's
# expiry (a job whose lease expired is rightly taken over: a second attempt).
LEASE_S = 300


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_a_job_longer_than_the_visibility_timeout_runs_once(
    tmp_path: Path,
    postgres_database: str,  # noqa: F811 (the fixture imported above)
    throwaway_redis: ThrowawayRedis,
) -> None:
    settings = _settings(tmp_path, database_url=postgres_database, broker_url=throwaway_redis.url)
    settings = settings.model_copy(update={"lease_seconds": LEASE_S})
    env = FAULT_ENV | {
        "RNNLAB_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_S),
        "RNNLAB_LEASE_SECONDS": str(LEASE_S),
    }
    workers = [start_worker(settings, tmp_path / "a.log", **env)]
    try:
        with TestClient(create_app(settings), headers=AUTH) as api:
            job_id = api.post("/train", json=ENDLESS).json()["id"]
            # Running on A, and for longer than the timeout: its task is now "visible" again.
            _wait_for_progress(api, job_id, beyond=0)
            started = datetime.fromisoformat(
                api.get(f"/jobs/{job_id}").json()["attempt_history"][0]["started_at"]
            )
            wait_for(
                lambda: datetime.now(UTC) - started > timedelta(seconds=VISIBILITY_S + 1),
                timeout=60,
                what="the visibility timeout to pass while the job runs",
            )
            b_log = tmp_path / "b.log"
            workers.append(start_worker(settings, b_log, **env))
            # B restored the task and received it: the lease turned it away.
            wait_for(
                lambda: f"job {job_id} is not claimable" in b_log.read_text(),
                timeout=120,
                what="worker B to receive the redelivered task and skip it",
            )
            _wait_for_progress(api, job_id, beyond=api.get(f"/jobs/{job_id}").json()["step"])
            job = _cancel(api, job_id)
            assert job["status"] == "cancelled" and job["attempts"] == 1
            (attempt,) = job["attempt_history"]
            assert attempt["worker"] == f"{socket.gethostname()}:{workers[0].pid}"
            assert attempt["outcome"] == "cancelled"
            _assert_one_timeline(api, job)
    finally:
        for worker in workers:
            stop_process(worker)
