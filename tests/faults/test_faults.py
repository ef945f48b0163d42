"""Fault tests with real processes: a worker SIGKILLed under `rnnlab serve`, Redis and PostgreSQL
restarted mid-job, two workers draining one queue.

Every restarted server is a throwaway one (tests/faults/services.py). Leases and sweeps are short,
set through the environment as a user would. The long jobs train "forever" and are cancelled once the
fault is behind them, so no test depends on how fast two shared cores train; what each checks is that
no job is lost, none runs twice, and its metric timeline has neither a gap nor a duplicate.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import engine_for, migrate, sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job
from app.main import create_app
from tests.conftest import (
    API_TOKEN,
    AUTH,
    ENDLESS_PALINDROME,
    PYTHON,
    REDIS_URL,
    TINY_PALINDROME,
    api_client,
    clean_env,
    free_port,
    migrated_postgres_database,
    start_server,
    start_worker,
    stop_process,
    wait_for,
    wait_for_status,
)
from tests.faults.services import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.slow  # servers restarted under real worker processes

LEASE_S, SWEEP_S = 30, 0.5  # a lease longer than any outage below: only a dead worker loses its job
FAULT_ENV = {
    "RNNLAB_LEASE_SECONDS": str(LEASE_S),
    "RNNLAB_SWEEP_SECONDS": str(SWEEP_S),
    # One thread per worker: several helpers share two cores, and torch's threads would only contend.
    "OMP_NUM_THREADS": "1",
}
# Trains until cancelled; checkpoints every 20 steps so a restart loses little.
ENDLESS = ENDLESS_PALINDROME | {"checkpoint_every": 20}
SHORT = TINY_PALINDROME | {"train_steps": 20, "log_every": 10, "eval_every": 20, "checkpoint_every": 20}


def _settings(tmp_path: Path, *, database_url: str, broker_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url=broker_url,
        queue=f"rnnlab-fault-{uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        lease_seconds=LEASE_S,
        sweep_seconds=SWEEP_S,
        api_tokens=API_TOKEN,
    )


def _metric_steps(api: Any, job_id: int) -> list[int]:
    steps: list[int] = []
    after: int | None = -1
    while after is not None:
        page = api.get(f"/jobs/{job_id}/metrics", params={"name": "loss", "after_step": after}).json()
        steps += [point["step"] for point in page["items"]]
        after = page["next_after_step"]
    return steps


def _assert_one_timeline(api: Any, job: dict[str, Any]) -> None:
    """Every 10th step once, in order, up to where the job stopped (the loop logs that step too)."""
    steps = _metric_steps(api, job["id"])
    expected = list(range(10, job["step"] + 1, 10))
    if job["step"] % 10:
        expected.append(job["step"])
    assert steps == expected, f"steps {steps} != {expected}"


def _wait_for_progress(api: Any, job_id: int, *, beyond: int, timeout: float = 120) -> dict[str, Any]:
    def progressed() -> dict[str, Any] | None:
        job = api.get(f"/jobs/{job_id}").json()
        return job if job["status"] == "running" and job["step"] > beyond else None

    return wait_for(progressed, timeout=timeout, what=f"job {job_id} to pass step {beyond}", interval=0.1)


def _cancel(api: Any, job_id: int) -> dict[str, Any]:
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
    return wait_for_status(api, job_id, "cancelled", "failed", "succeeded", timeout=120)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of this test's own on the shared server (for tests that restart only Redis)."""
    with migrated_postgres_database("rnnlab_faults") as url:
        yield url


def _forget_queue(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.broker_url)
    keys = list(client.scan_iter(f"{settings.queue}*")) + list(
        client.scan_iter(f"_kombu.binding.{settings.queue}*")
    )
    if keys:
        client.delete(*keys)
    client.close()


def test_a_worker_killed_under_serve_is_restarted_and_its_job_resumes(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = clean_env(RNNLAB_DATA_DIR=str(tmp_path / "data"), RNNLAB_BROKER_POLLING_INTERVAL="0.1", **FAULT_ENV)
    serve = start_server(
        [PYTHON, "-m", "app.cli", "serve", "--port", str(port)], env, log_path, port, new_session=True
    )
    try:
        with api_client(port) as api:
            job_id = api.post("/train", json=ENDLESS).json()["id"]
            wait_for(
                lambda: api.get(f"/jobs/{job_id}").json()["latest_checkpoint_id"],
                timeout=120,
                what="a first checkpoint",
            )
            worker_pid = int(re.findall(r"worker started \(pid (\d+)\)", log_path.read_text())[-1])
            os.kill(worker_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            # Nothing writes to the job any more: this is the checkpoint it must resume from.
            dead = api.get(f"/jobs/{job_id}").json()
            checkpoint = api.get(f"/checkpoints/{dead['latest_checkpoint_id']}").json()

            def resumed() -> dict[str, Any] | None:
                job = api.get(f"/jobs/{job_id}").json()
                return job if job["attempts"] == 2 and job["step"] > checkpoint["step"] else None

            job = wait_for(resumed, timeout=120, what="the job to resume on a restarted worker", interval=0.1)
            resume_s = time.monotonic() - killed_at
            print(f"\nthe killed worker's job took a step past its checkpoint {resume_s:.1f} s after SIGKILL")
            assert job["status"] == "running" and job["started_at"] == dead["started_at"]
            assert serve.poll() is None  # the same `serve`
            assert re.search(r"exited unexpectedly with code -9 .* restart 1 in", log_path.read_text())

            _wait_for_progress(api, job_id, beyond=job["step"] + 10)
            final = _cancel(api, job_id)
            assert final["status"] == "cancelled" and final["attempts"] == 2
            _assert_one_timeline(api, final)
            ready = api.get("/ready")
            assert ready.status_code == 200, ready.text
    finally:
        assert stop_process(serve) == 0, log_path.read_text()[-3000:]


def test_redis_restarts_mid_job_and_a_job_posted_while_it_is_down_runs_once(
    tmp_path: Path, postgres_database: str
) -> None:
    broker = ThrowawayRedis(tmp_path / "redis")
    broker.start()
    settings = _settings(tmp_path, database_url=postgres_database, broker_url=broker.url)
    worker = start_worker(settings, tmp_path / "worker.log", **FAULT_ENV)
    try:
        with TestClient(create_app(settings), headers=AUTH) as api:
            running = api.post("/train", json=ENDLESS).json()["id"]
            _wait_for_progress(api, running, beyond=20)

            broker.stop()
            created = api.post("/train", json=SHORT)
            assert created.status_code == 202, created.text  # stored, to be sent once the broker is back
            posted = created.json()["id"]
            # Unsent: its stamp is clear. The worker's sweep (every SWEEP_S) tries such a job again and holds
            # the stamp while its publish retries (about a second), so the stamp may be caught mid-try:
            # what must hold is that every try gives it back, so it is seen clear within a few sweeps.
            sessions = sessionmaker_for(postgres_database)

            def unsent() -> bool:
                with sessions() as session:
                    return session.scalar(select(Job.dispatched_at).where(Job.id == posted)) is None

            wait_for(
                unsent, timeout=10, what="the job posted while Redis is down to be unsent", interval=0.02
            )
            assert api.get("/ready").json()["checks"]["broker"].startswith("down")
            broker.start()

            # Training went on through the restart (it needs only the database).
            _wait_for_progress(api, running, beyond=api.get(f"/jobs/{running}").json()["step"] + 10)
            first = _cancel(api, running)  # frees the one worker for the job posted while Redis was down
            second = wait_for_status(api, posted, "succeeded", "failed", "cancelled", timeout=120)
            assert (first["status"], first["attempts"]) == ("cancelled", 1)
            assert (second["status"], second["attempts"], second["step"]) == ("succeeded", 1, 20)
            _assert_one_timeline(api, first)
            _assert_one_timeline(api, second)
    finally:
        stop_process(worker)
        broker.stop()


def test_postgres_restarts_mid_job_the_api_answers_503_and_the_job_goes_on(tmp_path: Path) -> None:
    database = ThrowawayPostgres()
    try:
        database.start()
        migrate(database.url)
        settings = _settings(tmp_path, database_url=database.url, broker_url=REDIS_URL)
        worker_log = tmp_path / "worker.log"
        worker = start_worker(settings, worker_log, **FAULT_ENV)
        try:
            with TestClient(create_app(settings), headers=AUTH) as api:
                job_id = api.post("/train", json=ENDLESS).json()["id"]
                before = _wait_for_progress(api, job_id, beyond=20)

                database.stop()
                for response in (
                    api.get(f"/jobs/{job_id}"),
                    api.get("/jobs"),
                    api.post("/train", json=SHORT),
                ):
                    assert response.status_code == 503, response.text
                    assert response.json()["detail"] == "database unavailable; try again shortly"
                assert api.get("/ready").json()["checks"]["database"].startswith("down")
                wait_for(
                    lambda: "database unavailable" in worker_log.read_text(),
                    timeout=60,
                    what="the worker to retry a write",
                )
                database.start()

                _wait_for_progress(api, job_id, beyond=before["step"] + 30)
                final = _cancel(api, job_id)
                assert (final["status"], final["attempts"]) == ("cancelled", 1)
                _assert_one_timeline(api, final)
        finally:
            stop_process(worker)
            _forget_queue(settings)
            engine_for(database.url).dispose()
    finally:
        database.remove()


def test_two_workers_on_redis_drain_eight_jobs_each_once(tmp_path: Path, postgres_database: str) -> None:
    settings = _settings(tmp_path, database_url=postgres_database, broker_url=REDIS_URL)
    workers = [start_worker(settings, tmp_path / f"worker-{n}.log", **FAULT_ENV) for n in (1, 2)]
    try:
        with TestClient(create_app(settings), headers=AUTH) as api:
            live = f'rnnlab_workers{{queue="{settings.queue}"}} 2.0'
            assert live in api.get("/metrics").text
            job_ids = [api.post("/train", json=SHORT).json()["id"] for _ in range(8)]
            jobs = [wait_for_status(api, job_id, "succeeded", "failed", timeout=180) for job_id in job_ids]
            assert [(job["status"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 8
            assert all(_metric_steps(api, job_id) == [10, 20] for job_id in job_ids)
    finally:
        for worker in workers:
            stop_process(worker)
        _forget_queue(settings)
