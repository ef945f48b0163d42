"""GET /workers, each job's attempts in GET /jobs/{id}, and routing by device, in-process.

The workers here are heartbeat rows written as a worker's sweep writes them, and the attempts are
real runs of `run_job` under a named runner; tests/worker/test_routing.py does the same with real
worker processes on two queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job, Worker, utcnow
from app.services import lease, workers
from app.services.attempts import Runner
from tests.conftest import TINY_PALINDROME
from worker.lifecycle import run_job


def _identity(name: str, queue: str, device: str) -> workers.WorkerIdentity:
    return workers.WorkerIdentity(
        name=name,
        hostname=name.split(":")[0],
        pid=int(name.split(":")[1]),
        queue=queue,
        device=device,
        started_at=utcnow(),
    )


@pytest.fixture
def queues(client: TestClient) -> Iterator[tuple[str, str]]:
    """The CPU and GPU queue names the in-process API routes to (no worker consumes either)."""
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    yield settings.queue_of("cpu"), settings.queue_of("gpu")
    with sessionmaker_for(settings.resolved_database_url)() as session:
        for name in ("gpu-box:11", "cpu-box:12", "gone-box:13"):
            workers.forget(session, name)


def _post(client: TestClient, **fields: Any) -> dict[str, Any]:
    created = client.post("/train", json=TINY_PALINDROME | fields)
    assert created.status_code == 202, created.text
    job: dict[str, Any] = created.json()
    return job


def test_jobs_go_to_the_queue_of_their_device(
    client: TestClient, settings: Settings, queues: tuple[str, str]
) -> None:
    cpu, gpu = queues
    sessions = sessionmaker_for(settings.resolved_database_url)
    posted: list[dict[str, Any]] = []

    def post(device: str) -> dict[str, Any]:
        posted.append(_post(client, device=device))
        return posted[-1]

    # No GPU worker: `cuda` waits on the GPU queue and says why, `auto` goes to the CPU workers.
    cuda = post("cuda")
    assert cuda["queue"] == gpu and cuda["status"] == "queued"
    detail = client.get(f"/jobs/{cuda['id']}").json()
    assert detail["waiting_reason"] == f"waiting on queue {gpu!r}: no live worker consumes it"
    assert detail["attempt_history"] == []
    assert post("auto")["queue"] == cpu
    assert post("cpu")["queue"] == cpu

    # A GPU worker beats: `auto` now goes to it, and the waiting job's reason is gone.
    with sessions() as session:
        workers.beat(session, _identity("gpu-box:11", gpu, "cuda:0"), current_job_id=None)
    assert post("auto")["queue"] == gpu
    assert post("cpu")["queue"] == cpu
    assert client.get(f"/jobs/{cuda['id']}").json()["waiting_reason"] is None

    # Silent past the lease: dead, so `auto` falls back to the CPU queue again.
    with sessions() as session:
        stale = utcnow() - timedelta(seconds=settings.lease_seconds + 1)
        session.execute(update(Worker).where(Worker.name == "gpu-box:11").values(heartbeat_at=stale))
        session.commit()
    assert post("auto")["queue"] == cpu
    assert client.get(f"/jobs/{cuda['id']}").json()["waiting_reason"] is not None
    # Leave the shared queue as it was (POST /train counts queued jobs against a limit).
    for job in posted:
        assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_workers_list_their_queue_device_liveness_current_job_and_finished_jobs(
    client: TestClient, settings: Settings, queues: tuple[str, str]
) -> None:
    cpu, gpu = queues
    sessions = sessionmaker_for(settings.resolved_database_url)
    job = _post(client)
    runner = Runner(worker="cpu-box:12", device="cpu")
    with sessions() as session:
        workers.beat(session, _identity("gpu-box:11", gpu, "cuda:0"), current_job_id=None)
        workers.beat(session, _identity("cpu-box:12", cpu, "cpu"), current_job_id=job["id"])
        workers.beat(session, _identity("gone-box:13", cpu, "cpu"), current_job_id=None)
        stale = utcnow() - timedelta(seconds=settings.lease_seconds + 1)
        session.execute(update(Worker).where(Worker.name == "gone-box:13").values(heartbeat_at=stale))
        session.commit()
    assert run_job(job["id"], sessions=sessions, runner=runner) == "succeeded"

    listed = {w["name"]: w for w in client.get("/workers").json() if w["name"].endswith(("11", "12", "13"))}
    assert listed["gpu-box:11"] | {"heartbeat_at": None, "started_at": None} == {
        "name": "gpu-box:11",
        "hostname": "gpu-box",
        "pid": 11,
        "queue": gpu,
        "device": "cuda:0",
        "started_at": None,
        "heartbeat_at": None,
        "alive": True,
        "current_job_id": None,
        "jobs_finished": 0,
    }
    assert listed["cpu-box:12"]["current_job_id"] == job["id"]
    assert listed["cpu-box:12"]["jobs_finished"] == 1 and listed["cpu-box:12"]["alive"]
    assert listed["gone-box:13"]["alive"] is False
    names = [w["name"] for w in client.get("/workers").json()]
    assert names.index("gone-box:13") > max(names.index("gpu-box:11"), names.index("cpu-box:12"))


def test_each_attempt_names_its_worker_device_and_outcome(client: TestClient, settings: Settings) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = _post(client)["id"]
    # The first worker claims the job and then goes silent (killed): its lease goes stale.
    with sessions() as session:
        assert lease.claim(session, job_id, lease_seconds=120, runner=Runner("first:1", "cuda:0")) is not None
        stale = utcnow() - timedelta(seconds=121)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=stale))
        session.commit()
    running = client.get(f"/jobs/{job_id}").json()["attempt_history"]
    assert [(a["number"], a["worker"], a["ended_at"], a["outcome"]) for a in running] == [
        (1, "first:1", None, None)
    ]
    # A second worker takes it over and runs it to the end.
    assert (
        run_job(job_id, sessions=sessions, lease_seconds=120, runner=Runner("second:2", "cpu")) == "succeeded"
    )
    done = client.get(f"/jobs/{job_id}").json()
    assert done["attempts"] == 2 and done["waiting_reason"] is None
    history = done["attempt_history"]
    assert [(a["number"], a["worker"], a["device"], a["outcome"]) for a in history] == [
        (1, "first:1", "cuda:0", "worker lost"),
        (2, "second:2", "cpu", "succeeded"),
    ]
    assert all(a["started_at"] <= a["ended_at"] for a in history)
    assert history[0]["ended_at"] <= history[1]["started_at"]


@pytest.mark.slow  # two runs of the job
def test_a_worker_that_shuts_down_records_a_requeued_attempt(client: TestClient, settings: Settings) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = _post(client)["id"]
    stop_after_checkpoint = iter([False] * 25 + [True] * 1000)
    outcome = run_job(
        job_id,
        sessions=sessions,
        runner=Runner("leaving:3", "cpu"),
        interrupted=lambda: next(stop_after_checkpoint),
    )
    assert outcome == "requeued"
    assert run_job(job_id, sessions=sessions, runner=Runner("staying:4", "cpu")) == "succeeded"
    history = client.get(f"/jobs/{job_id}").json()["attempt_history"]
    assert [(a["worker"], a["outcome"]) for a in history] == [
        ("leaving:3", "requeued"),
        ("staying:4", "succeeded"),
    ]
