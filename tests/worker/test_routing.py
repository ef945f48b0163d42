"""Routing by device with real worker processes on two queues (PostgreSQL + Redis).

There is no GPU here, so the "GPU worker" is a CPU process started as `rnnlab worker --queue gpu
--device cpu`: it consumes the GPU queue and says truthfully that it trains on the CPU. What is
tested is the routing (which queue each job goes to, who takes it, what a job on a queue without a
live worker says), not CUDA.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.main import create_app
from tests.conftest import AUTH, TINY_PALINDROME, start_worker, stop_process, wait_for, wait_for_status

pytestmark = pytest.mark.slow  # real worker processes


@pytest.fixture
def two_queues(pg_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, TestClient]]:
    """Queues of this test's own (no session worker consumes them) and the API routing to them."""
    settings = pg_settings.model_copy(update={"queue": f"routing-{uuid4().hex[:8]}"})
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield settings, client
    import redis

    redis.Redis.from_url(settings.broker_url).delete(settings.queue_of("cpu"), settings.queue_of("gpu"))


def _name(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}:{proc.pid}"  # as a worker names itself


def _post(client: TestClient, device: str) -> dict[str, Any]:
    created = client.post("/train", json=TINY_PALINDROME | {"device": device})
    assert created.status_code == 202, created.text
    job: dict[str, Any] = created.json()
    return job


def _ran_on(client: TestClient, job_id: int, status: str = "succeeded") -> tuple[str, str]:
    job = wait_for_status(client, job_id, status, timeout=180)
    (attempt,) = job["attempt_history"]
    assert attempt["outcome"] == status
    return attempt["worker"], attempt["device"]


def test_jobs_run_on_the_workers_of_their_device(
    two_queues: tuple[Settings, TestClient], tmp_path: Path
) -> None:
    settings, client = two_queues
    cpu_queue, gpu_queue = settings.queue_of("cpu"), settings.queue_of("gpu")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        cpu = start_worker(settings, tmp_path / "cpu.log", rnnlab_flags=["--queue", "cpu"])
        workers.append(cpu)

        # No GPU worker yet: a `cuda` job is accepted and waits on the GPU queue, saying so...
        cuda_job = _post(client, "cuda")
        assert cuda_job["queue"] == gpu_queue
        waiting = client.get(f"/jobs/{cuda_job['id']}").json()
        assert waiting["status"] == "queued"
        assert waiting["waiting_reason"] == f"waiting on queue {gpu_queue!r}: no live worker consumes it"
        # ...and `auto` goes to the CPU worker.
        auto_on_cpu = _post(client, "auto")
        assert auto_on_cpu["queue"] == cpu_queue
        assert _ran_on(client, auto_on_cpu["id"]) == (_name(cpu), "cpu")
        assert client.get(f"/jobs/{cuda_job['id']}").json()["status"] == "queued"  # the CPU worker left it

        gpu = start_worker(settings, tmp_path / "gpu.log", rnnlab_flags=["--queue", "gpu", "--device", "cpu"])
        workers.append(gpu)
        # The waiting `cuda` job reaches the GPU queue's worker; it has no CUDA here, so the job fails
        # there, with the loop's own message, as a cuda job on a CPU-only machine must.
        failed = wait_for_status(client, cuda_job["id"], "failed", timeout=180)
        assert "CUDA is not available" in failed["error"]
        assert [(a["worker"], a["outcome"]) for a in failed["attempt_history"]] == [(_name(gpu), "failed")]

        # With a live GPU worker, `auto` goes to it; `cpu` still goes to the CPU worker.
        auto_on_gpu, on_cpu = _post(client, "auto"), _post(client, "cpu")
        assert (auto_on_gpu["queue"], on_cpu["queue"]) == (gpu_queue, cpu_queue)
        assert _ran_on(client, auto_on_gpu["id"]) == (_name(gpu), "cpu")
        assert _ran_on(client, on_cpu["id"]) == (_name(cpu), "cpu")

        listed = {w["name"]: w for w in client.get("/workers").json()}
        assert {k: listed[_name(cpu)][k] for k in ("queue", "device", "alive", "jobs_finished")} == {
            "queue": cpu_queue,
            "device": "cpu",
            "alive": True,
            "jobs_finished": 2,
        }
        assert {k: listed[_name(gpu)][k] for k in ("queue", "device", "alive", "jobs_finished")} == {
            "queue": gpu_queue,
            "device": "cpu",
            "alive": True,
            "jobs_finished": 2,
        }

        # A worker that stops cleanly leaves the table at once; with no GPU worker, `auto` is CPU's again.
        assert stop_process(gpu) == 0
        wait_for(
            lambda: _name(gpu) not in {w["name"] for w in client.get("/workers").json()},
            timeout=30,
            what="the stopped worker to leave /workers",
        )
        assert _post(client, "auto")["queue"] == cpu_queue
    finally:
        for proc in workers:
            stop_process(proc)
