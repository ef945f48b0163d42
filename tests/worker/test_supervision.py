"""Supervision pieces on a fresh database each: worker liveness and /ready, the outbox, poison jobs,
concurrent sweeps, and `serve`'s restart policy (tests/faults/ drives them with real processes)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.core.db import migrate, sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job, Worker, utcnow
from app.main import create_app
from app.runtime.supervisor import WorkerSupervisor
from app.services import lease, supervision, workers
from tests.conftest import API_TOKEN, AUTH, TINY_PALINDROME, migrated_postgres_database, wait_for

DOWN_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture(params=["postgres", "sqlite"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on an empty, migrated database of this test's own (sweeps touch every job in it)."""
    base = Settings(_env_file=None, data_dir=tmp_path / "data", queue="supervision", api_tokens=API_TOKEN)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rnnlab.db'}"
        migrate(url)
        yield base.model_copy(update={"database_url": url})
        return
    with migrated_postgres_database("rnnlab_supervision") as url:
        yield base.model_copy(update={"database_url": url})


def _identity(name: str, queue: str) -> workers.WorkerIdentity:
    return workers.WorkerIdentity(
        name=name, hostname="here", pid=1, queue=queue, device="cpu", started_at=utcnow()
    )


def test_ready_needs_a_worker_heartbeat_within_the_lease(fresh: Settings) -> None:
    sessions = sessionmaker_for(fresh.resolved_database_url)
    with TestClient(create_app(fresh), headers=AUTH) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable: workers down"
        assert "no worker on queue 'supervision'" in ready.json()["checks"]["workers"]

        with sessions() as session:
            workers.beat(session, _identity("w1", fresh.queue), current_job_id=None)
            workers.beat(session, _identity("elsewhere", "another-queue"), current_job_id=None)
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "workers": "ok"}
        metrics = client.get("/metrics").text
        assert 'rnnlab_workers{queue="supervision"} 1.0' in metrics
        assert 'rnnlab_workers{queue="another-queue"} 1.0' in metrics

        # Silent for longer than the lease: presumed dead, and no longer counted.
        with sessions() as session:
            long_ago = utcnow() - timedelta(seconds=fresh.lease_seconds + 1)
            session.execute(update(Worker).values(heartbeat_at=long_ago))
            session.commit()
        assert client.get("/ready").status_code == 503
        assert "rnnlab_workers{" not in client.get("/metrics").text


def test_a_job_posted_while_the_broker_is_down_is_stored_then_sent_once(fresh: Settings) -> None:
    down = fresh.model_copy(update={"broker_url": DOWN_BROKER})
    with TestClient(create_app(down), headers=AUTH) as client:
        created = client.post("/train", json=TINY_PALINDROME)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.json()["status"] == "queued"

    sessions = sessionmaker_for(fresh.resolved_database_url)
    sent: list[int] = []
    with sessions() as session:
        assert session.scalar(select(Job.dispatched_at).where(Job.id == job_id)) is None

        def refuse(_job_id: int, _queue: str) -> None:
            raise ConnectionError("still down")

        assert (
            supervision.sweep(session, queue=fresh.queue, enqueue=refuse, lease_seconds=120, max_attempts=3)
            == []
        )
        assert supervision.sweep(
            session,
            queue=fresh.queue,
            enqueue=lambda job_id, _queue: sent.append(job_id),
            lease_seconds=120,
            max_attempts=3,
        ) == [job_id]
        assert (
            supervision.sweep(
                session,
                queue=fresh.queue,
                enqueue=lambda job_id, _queue: sent.append(job_id),
                lease_seconds=120,
                max_attempts=3,
            )
            == []
        )
        assert session.scalar(select(Job.dispatched_at).where(Job.id == job_id)) is not None
    assert sent == [job_id]


def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(fresh: Settings) -> None:
    sessions = sessionmaker_for(fresh.resolved_database_url)
    with TestClient(create_app(fresh), headers=AUTH) as client:
        job_id = client.post("/train", json=TINY_PALINDROME).json()["id"]
        for death in (1, 2, 3):
            with sessions() as session:
                assert lease.claim(session, job_id, lease_seconds=120) is not None
                # The worker died: nothing runs the job; `serve` (lease None) or a sweep finds it.
                released = supervision.release_orphans(
                    session, queue=fresh.queue, lease_seconds=None, max_attempts=3
                )
            job = client.get(f"/jobs/{job_id}").json()
            if death < 3:
                assert released == [job_id] and job["status"] == "queued"
        assert released == []
        assert job["status"] == "failed" and job["attempts"] == 3
        assert "died 3 times (RNNLAB_MAX_ATTEMPTS=3)" in job["error"]


def test_concurrent_sweeps_send_a_released_job_once(fresh: Settings) -> None:
    sessions = sessionmaker_for(fresh.resolved_database_url)
    with TestClient(create_app(fresh), headers=AUTH) as client:
        job_id = client.post("/train", json=TINY_PALINDROME).json()["id"]
    with sessions() as session:
        assert lease.claim(session, job_id, lease_seconds=120) is not None
        long_ago = utcnow() - timedelta(seconds=600)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=long_ago))
        session.commit()
    sent: list[int] = []
    start = threading.Barrier(4)

    def sweeper() -> None:
        start.wait()
        with sessions() as session:
            supervision.sweep(
                session,
                queue=fresh.queue,
                enqueue=lambda job_id, _queue: sent.append(job_id),
                lease_seconds=120,
                max_attempts=3,
            )

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sent == [job_id]
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.crashes) == ("queued", 1)


def test_serve_restarts_a_dying_worker_with_backoff_and_not_one_that_shut_down() -> None:
    restarts_before: list[int] = []
    dying = WorkerSupervisor(
        [sys.executable, "-c", "import os; os._exit(3)"],
        before_restart=lambda: restarts_before.append(1),
        first_delay_s=0.05,
        max_delay_s=0.2,
    )
    dying.start()
    try:
        wait_for(lambda: dying.restarts >= 4, timeout=60, what="four restarts")
    finally:
        dying.stop(timeout=10)
    assert len(restarts_before) >= 3  # the dead worker's jobs are re-queued before each restart

    clean = WorkerSupervisor([sys.executable, "-c", "pass"], before_restart=lambda: None, first_delay_s=0.05)
    clean.start()
    wait_for(lambda: not clean.watching, timeout=30, what="the supervisor to give up")
    assert clean.restarts == 0
    clean.stop(timeout=10)
