"""The compose topology, run as local processes: the `command` of docker-compose.yml's migrate, api and
worker services, with the environment pointing at the real PostgreSQL and Redis on 127.0.0.1.

There is no Docker engine in CI, so this is how the stack `docker compose up` starts is exercised: same
commands, same configuration surface (the RNNLAB_* variables compose sets), real stores. Only the API's
listen address changes (127.0.0.1 and a free port instead of 0.0.0.0:8000), so a developer's own
server on 8000 cannot answer in its place.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.conftest import API_TOKEN, AUTH, REDIS_URL, fresh_postgres_database
from tests.deploy.compose.checks import PALINDROME, TEXT  # the jobs the compose test trains too

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FINISHED = {"succeeded", "failed", "cancelled"}

pytestmark = pytest.mark.slow


def compose_service(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]


def local_command(service: str, **replace: str) -> list[str]:
    """The service's compose `command`, run from this virtual environment; `replace` swaps option values."""
    command = list(compose_service(service)["command"])
    assert command[0] == "rnnlab", command
    command[0] = str(BIN / "rnnlab")
    for option, value in replace.items():
        command[command.index(f"--{option}") + 1] = value
    return command


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str] = str) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` (and the logs) at the deadline."""
    deadline = time.monotonic() + timeout
    interval = 0.05
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The processes of one stack; each one's output goes to a log file shown when a check fails."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"----- {path.name} (last 60 lines) -----")
            parts += path.read_text(errors="replace").splitlines()[-60:]
        return "\n".join(parts)

    def run(self, name: str, command: list[str], timeout: float) -> None:
        with self.log(name).open("w") as out:
            result = subprocess.run(
                command, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        assert result.returncode == 0, f"{name} exited {result.returncode}\n{self.logs()}"

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        out = self.log(name).open("w")
        proc = subprocess.Popen(command, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()  # the child holds its own copy
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str) -> subprocess.Popen:
        ready = Path(self.env["RNNLAB_WORKER_READY_FILE"])
        ready.unlink(missing_ok=True)
        proc = self.start(name, local_command("worker"))
        up = lambda: ready.exists() or proc.poll() is not None  # noqa: E731
        wait_for(f"{name} to consume the queue", up, 90, self.logs)
        assert proc.poll() is None, f"{name} exited {proc.returncode}\n{self.logs()}"
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database("rnnlab_deploy") as url:
        yield url


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"rnnlab_deploy_{secrets.token_hex(4)}"
    yield name
    # Only this run's keys are touched: its queue name is unique.
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}*")) + list(client.scan_iter(f"_kombu.binding.{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def stack(tmp_path: Path, database: str, queue: str) -> Iterator[Stack]:
    compose_env = set(compose_service("api")["environment"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNLAB_")}
    env.update(
        RNNLAB_DATABASE_URL=database,
        RNNLAB_BROKER_URL=REDIS_URL,
        RNNLAB_QUEUE=queue,
        RNNLAB_LOG_FORMAT="json",
        RNNLAB_LOG_LEVEL="INFO",
        RNNLAB_DATA_DIR=str(tmp_path / "data"),
        RNNLAB_WORKER_READY_FILE=str(tmp_path / "worker.ready"),
        RNNLAB_API_TOKENS=API_TOKEN,
        RNNLAB_PROTECT_READS="false",
        RNNLAB_BROKER_VISIBILITY_TIMEOUT="3600",
        RNNLAB_FORWARDED_ALLOW_IPS="127.0.0.1",
        RNNLAB_RATE_LIMIT_PER_MINUTE="600",
        RNNLAB_RATE_LIMIT_BURST="120",
        RNNLAB_SESSION_FSYNC="everysec",
    )
    # The stack under test gets every variable compose gives the services, and no other service setting.
    assert compose_env <= set(env), compose_env - set(env)
    s = Stack(tmp_path, env)
    try:
        yield s
    finally:
        s.stop_all()


def get_job(client: httpx.Client, job_id: int) -> dict:
    response = client.get(f"/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


def wait_finished(client: httpx.Client, stack: Stack, job_id: int, timeout: float) -> dict:
    def finished() -> dict | None:
        job = get_job(client, job_id)
        return job if job["status"] in FINISHED else None

    return wait_for(f"job {job_id} to finish", finished, timeout, stack.logs)


def metric_steps(client: httpx.Client, job_id: int, name: str) -> list[int]:
    steps: list[int] = []
    after = -1
    while after is not None:
        page = client.get(f"/jobs/{job_id}/metrics", params={"name": name, "after_step": after}).json()
        steps += [point["step"] for point in page["items"]]
        after = page["next_after_step"]
    return steps


def submit(client: httpx.Client, body: dict) -> int:
    response = client.post("/train", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def metric_value(metrics: str, line_start: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# The whole stack, two workers and a 1000-step job stopped and resumed: its own deadlines add up to
# far more than the default per-test timeout, and each of them names what it waited for.
@pytest.mark.timeout(1500)
def test_compose_commands_run_the_stack(stack: Stack) -> None:
    stack.run("migrate", local_command("migrate"), timeout=180)
    api = stack.start("api", local_command("api", host="127.0.0.1", port=str(stack.port)))
    with httpx.Client(base_url=stack.url, headers=AUTH, timeout=30) as client:

        def api_up() -> bool:
            assert api.poll() is None, f"api exited {api.returncode}\n{stack.logs()}"
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the API to answer /health", api_up, 90, stack.logs)
        stack.start_worker("worker-1")

        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text

        # --- a palindrome job and a text job, to completion --------------------------------------------
        palindrome = submit(client, {**PALINDROME, "train_steps": 40})
        text = submit(client, {**TEXT, "train_steps": 40})
        for job_id in (palindrome, text):
            job = wait_finished(client, stack, job_id, timeout=240)
            assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"
            assert job["step"] == 40
            assert metric_steps(client, job_id, "loss") == list(range(5, 41, 5))

        params = {"job_id": text, "seed": "", "length": 25, "temperature": 0}
        generated = client.get("/generate", params=params)
        assert generated.status_code == 200, generated.text
        assert len(generated.json()["text"]) == 25

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        body = metrics.text
        requests = "rnnlab_http_requests_total"
        assert metric_value(body, f'{requests}{{method="POST",route="/train",status="202"}}') == 2
        assert metric_value(body, f'{requests}{{method="GET",route="/jobs/{{job_id}}",status="200"}}')
        assert metric_value(body, 'rnnlab_jobs{status="succeeded"}') == 2
        assert metric_value(body, 'rnnlab_jobs{status="queued"}') == 0
        assert metric_value(body, f'rnnlab_queue_depth{{queue="{stack.env["RNNLAB_QUEUE"]}"}}') == 0
        assert "rnnlab_http_request_duration_seconds_bucket" in body

        # --- SIGTERM mid-job: a checkpoint, the job back in the queue, finished by the next worker -------
        total = 1000
        long_job = submit(client, {**PALINDROME, "train_steps": total, "checkpoint_every": 50})

        def checkpointed() -> dict | None:
            job = get_job(client, long_job)
            assert job["status"] not in FINISHED, f"job finished before the worker was stopped: {job}"
            return job if job["status"] == "running" and job["latest_checkpoint_id"] is not None else None

        running = wait_for("the long job's first checkpoint", checkpointed, 240, stack.logs)
        body = client.get("/metrics").text
        assert metric_value(body, 'rnnlab_jobs{status="running"}') == 1
        assert metric_value(body, f'rnnlab_training_step{{job_id="{long_job}"}}') >= running["step"]
        worker = stack.procs["worker-1"]
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker did not exit within 90 s of SIGTERM\n{stack.logs()}")

        stopped = get_job(client, long_job)
        assert stopped["status"] == "queued", f"{stopped}\n{stack.logs()}"
        assert 0 < stopped["step"] < total
        assert stopped["latest_checkpoint_id"] is not None

        stack.start_worker("worker-2")
        job = wait_finished(client, stack, long_job, timeout=420)
        assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"
        assert job["step"] == total
        assert job["attempts"] >= 2
        # Resumed from the checkpoint taken at SIGTERM: every logged step exactly once, none missing. The
        # loop may also record the step it stopped at (off the log_every cadence); nothing else is extra.
        steps = metric_steps(client, long_job, "loss")
        assert steps == sorted(set(steps)), "duplicate or out-of-order metric steps"
        cadence = set(range(5, total + 1, 5))
        assert cadence <= set(steps), f"missing steps: {sorted(cadence - set(steps))[:20]}"
        assert set(steps) - cadence <= {stopped["step"]}

        # Last, so a missing hook does not hide the checks above: /generate feeds the generation metrics.
        body = client.get("/metrics").text
        assert metric_value(body, "rnnlab_generated_characters_total") == 25, (
            "the generation service must call app.observability.observe_generation(chars, seconds)"
        )
