"""The training task: called directly (in-process) and through real worker processes."""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job, Metric, utcnow
from app.observability.context import ContextFilter
from app.services import lease, supervision
from tests.conftest import (
    AUTH,
    TINY_PALINDROME,
    TINY_TEXT,
    count_rows,
    start_worker,
    stop_process,
    wait_for,
    wait_for_status,
)
from worker.lifecycle import JobOutcome, run_job

# Long enough to be caught mid-run, tiny enough to finish in seconds once resumed.
LONG_PALINDROME: dict[str, Any] = TINY_PALINDROME | {
    "model": "rnn",
    "hidden_size": 8,
    "batch_size": 8,
    "train_steps": 100_000,
    "eval_every": 100_000,
    "checkpoint_every": 100_000,
}


def _job(client: TestClient, job_id: int) -> dict[str, Any]:
    return client.get(f"/jobs/{job_id}").json()


def test_task_called_directly(client: TestClient, settings: Settings) -> None:
    job = client.post("/train", json=TINY_PALINDROME).json()
    sessions = sessionmaker_for(settings.resolved_database_url)
    assert run_job(job["id"], sessions=sessions) == "succeeded"
    done = _job(client, job["id"])
    assert done["status"] == "succeeded" and done["step"] == 40 and done["progress"] == 1
    assert done["started_at"] <= done["finished_at"] and done["attempts"] == 1
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(done["latest_metrics"])
    checkpoints = client.get(f"/jobs/{job['id']}/checkpoints").json()
    assert [c["step"] for c in checkpoints] == [20, 40] and checkpoints[-1]["is_final"]
    assert done["latest_checkpoint_id"] == checkpoints[-1]["id"]
    assert [c["id"] for c in checkpoints if c["is_best"]] == [done["best_checkpoint_id"]]

    # A task whose job is already finished does nothing.
    before = count_rows(settings)
    assert run_job(job["id"], sessions=sessions) == "skipped"
    assert count_rows(settings) == before and _job(client, job["id"])["finished_at"] == done["finished_at"]


def test_task_of_a_cancelled_queued_job_does_nothing(client: TestClient, settings: Settings) -> None:
    job = client.post("/train", json=TINY_PALINDROME).json()
    client.post(f"/jobs/{job['id']}/cancel")
    assert run_job(job["id"], sessions=sessionmaker_for(settings.resolved_database_url)) == "skipped"
    assert _job(client, job["id"])["status"] == "cancelled"
    assert client.get(f"/jobs/{job['id']}/checkpoints").json() == []


def test_two_workers_never_hold_one_job(client: TestClient, settings: Settings) -> None:
    job = client.post("/train", json=TINY_PALINDROME).json()
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as session:
        stale_token = lease.claim(session, job["id"], lease_seconds=120)
        assert stale_token is not None
        assert lease.claim(session, job["id"], lease_seconds=120) is None  # its lease is fresh
        # The first worker went silent for longer than the lease: it is presumed dead.
        session.execute(
            update(Job).where(Job.id == job["id"]).values(heartbeat_at=utcnow() - timedelta(seconds=600))
        )
        session.commit()
    assert run_job(job["id"], sessions=sessions, lease_seconds=120) == "succeeded"
    assert _job(client, job["id"])["attempts"] == 2
    # If the first one was only slow, none of its writes land any more.
    with sessions() as session, pytest.raises(lease.LeaseLost):
        lease.record_metrics(session, job["id"], stale_token, step=1, metrics={"loss": 9.0})


def _queue(client: TestClient) -> str:
    """The queue the client's jobs go to: only that queue's workers release them."""
    return client.app.state.settings.queue


def test_orphaned_running_jobs_are_released(client: TestClient, settings: Settings) -> None:
    dead, alive = (client.post("/train", json=TINY_PALINDROME).json()["id"] for _ in range(2))
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as session:
        assert lease.claim(session, dead, lease_seconds=120) is not None
        assert lease.claim(session, alive, lease_seconds=120) is not None
        long_ago = utcnow() - timedelta(seconds=600)
        session.execute(update(Job).where(Job.id == dead).values(heartbeat_at=long_ago))
        session.commit()
        # Only the job whose worker stopped heart-beating is given back...
        assert supervision.release_orphans(
            session, queue=_queue(client), lease_seconds=120, max_attempts=3
        ) == [dead]
        assert (_job(client, dead)["status"], _job(client, alive)["status"]) == ("queued", "running")
        # ...unless no worker can be running at all (`rnnlab serve` before it starts its worker).
        assert supervision.release_orphans(
            session, queue=_queue(client), lease_seconds=None, max_attempts=3
        ) == [alive]
    assert run_job(dead, sessions=sessions) == "succeeded"
    assert _job(client, dead)["attempts"] == 2


def test_a_released_job_shows_the_step_it_will_resume_from(client: TestClient, settings: Settings) -> None:
    from models.config import PalindromeConfig
    from models.data import make_data
    from models.train import train

    job_id = client.post("/train", json=TINY_PALINDROME).json()["id"]
    config = PalindromeConfig.model_validate(TINY_PALINDROME | {"train_steps": 20})
    checkpoint = train(config, make_data(config)).final_checkpoint
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as session:
        token = lease.claim(session, job_id, lease_seconds=120)
        assert token is not None
        lease.record_checkpoint(
            session, job_id, token, step=20, checkpoint=checkpoint, is_best=True, is_final=False
        )
        # The attempt went on past its checkpoint, then died without a word.
        lease.heartbeat(session, job_id, token, step=37, steps_per_second=5.0)
        assert _job(client, job_id)["step"] == 37
        assert supervision.release_orphans(
            session, queue=_queue(client), lease_seconds=None, max_attempts=3
        ) == [job_id]
    released = _job(client, job_id)
    assert (released["status"], released["step"], released["steps_per_second"]) == ("queued", 20, None)


def test_failure_is_recorded(client: TestClient, settings: Settings) -> None:
    # A corpus shorter than seq_length passes the schema but not the loop's data check.
    dataset = client.post("/datasets", files={"file": ("tiny.txt", b"abcabc", "text/plain")}).json()
    job = client.post("/train", json=TINY_TEXT | {"dataset_id": dataset["id"]}).json()
    assert run_job(job["id"], sessions=sessionmaker_for(settings.resolved_database_url)) == "failed"
    failed = _job(client, job["id"])
    assert failed["status"] == "failed" and "seq_length" in failed["error"]


def test_log_lines_inside_a_job_carry_its_id(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(ContextFilter())  # as on the handler configure_logging installs
    caplog.set_level(logging.INFO, logger="worker")
    dataset = client.post("/datasets", files={"file": ("tiny.txt", b"abcabc", "text/plain")}).json()
    failing = client.post("/train", json=TINY_TEXT | {"dataset_id": dataset["id"]}).json()["id"]
    cancelled = client.post("/train", json=TINY_PALINDROME).json()["id"]
    client.post(f"/jobs/{cancelled}/cancel")
    sessions = sessionmaker_for(settings.resolved_database_url)

    assert run_job(failing, sessions=sessions) == JobOutcome.FAILED
    assert run_job(cancelled, sessions=sessions) == JobOutcome.SKIPPED
    logging.getLogger("worker.test").warning("between jobs")

    # The lines pass no `extra=`: the job id comes from the context the job runs in, and ends with it.
    lines = {(r.getMessage(), getattr(r, "job_id", None)) for r in caplog.records}
    assert (f"job {failing} failed", failing) in lines
    not_claimable = f"job {cancelled} is not claimable (finished, cancelled or running elsewhere)"
    assert (not_claimable, cancelled) in lines
    assert ("between jobs", None) in lines


@pytest.mark.slow  # a real worker process
def test_through_a_real_worker(pg_client: TestClient, pg_worker: subprocess.Popen[bytes]) -> None:
    job = pg_client.post("/train", json=TINY_TEXT).json()
    done = wait_for_status(pg_client, job["id"], "succeeded", "failed", timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert pg_client.get(f"/jobs/{job['id']}/samples").json()


@pytest.mark.slow  # a real worker process
def test_cancel_a_running_job(pg_client: TestClient, pg_worker: subprocess.Popen[bytes]) -> None:
    job = pg_client.post("/train", json=LONG_PALINDROME).json()
    wait_for(lambda: _job(pg_client, job["id"])["step"] > 20, timeout=120, what="the job to make progress")
    assert pg_client.post(f"/jobs/{job['id']}/cancel").json()["cancel_requested"]
    done = wait_for_status(pg_client, job["id"], "cancelled", "succeeded", "failed", timeout=60)
    assert done["status"] == "cancelled" and 0 < done["step"] < 100_000
    final = pg_client.get(f"/checkpoints/{done['latest_checkpoint_id']}").json()
    assert final["is_final"] and final["step"] == done["step"]
    assert pg_client.post(f"/jobs/{job['id']}/cancel").status_code == 409


@pytest.mark.slow  # a real worker process
def test_sigterm_mid_job_requeues_and_a_new_worker_resumes(pg_settings: Settings, tmp_path: Path) -> None:
    from app.main import create_app

    settings = pg_settings.model_copy(update={"queue": f"rnnlab-sigterm-{uuid4().hex[:8]}"})
    config = LONG_PALINDROME | {"train_steps": 1500, "log_every": 10}
    with TestClient(create_app(settings), headers=AUTH) as client:
        first = start_worker(settings, tmp_path / "first.log")
        try:
            job = client.post("/train", json=config).json()
            wait_for(
                lambda: _job(client, job["id"])["step"] >= 50, timeout=120, what="the job to make progress"
            )
        finally:
            assert stop_process(first) == 0  # SIGTERM: warm shutdown
        stopped = _job(client, job["id"])
        if stopped["status"] == "succeeded":
            pytest.fail("the job finished before SIGTERM arrived; make it longer")
        assert stopped["status"] == "queued" and stopped["latest_checkpoint_id"] is not None
        resumed_from = client.get(f"/checkpoints/{stopped['latest_checkpoint_id']}").json()["step"]
        assert 0 < resumed_from < 1500

        second = start_worker(settings, tmp_path / "second.log")
        try:
            done = wait_for_status(client, job["id"], "succeeded", "failed", "cancelled", timeout=300)
        finally:
            stop_process(second)
    assert done["status"] == "succeeded" and done["step"] == 1500 and done["attempts"] == 2
    with sessionmaker_for(settings.resolved_database_url)() as session:
        steps = session.scalars(
            select(Metric.step).where(Metric.job_id == job["id"], Metric.name == "loss").order_by(Metric.step)
        ).all()
    # Every logging step once: none lost across the restart, none duplicated.
    assert len(steps) == len(set(steps))
    assert set(range(10, 1501, 10)) <= set(steps)
    assert set(steps) - set(range(10, 1501, 10)) <= {resumed_from}
