"""The compose test's checks, in the order a user meets them; each step is printed with its time.

    ./run compose-test            (or: .venv/bin/python -m tests.deploy.compose)

Exit 0 when every check passed; 1 with the failed check's message (and the stack's logs) otherwise. The
stack is always torn down, volumes too, and the leftovers of an interrupted run are removed first.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from tests.deploy.compose import engine as engines
from tests.deploy.compose import override
from tests.deploy.compose.stack import CheckFailed, Stack, wait_for

ROOT = override.ROOT
PROJECT = "rnnlab-compose-test"
PORTS = override.Ports(postgres=25432, redis=26379, api=28000, flower=25555)
FINISHED = {"succeeded", "failed", "cancelled"}
TINY = {"batch_size": 16, "log_every": 5, "eval_every": 20, "checkpoint_every": 20, "device": "cpu"}
PALINDROME = {**TINY, "task": "palindrome", "model": "lstm", "input_length": 5, "hidden_size": 16}
TEXT = {
    **TINY,
    "task": "text",
    "hidden_size": 16,
    "num_layers": 1,
    "embedding_size": 8,
    "seq_length": 16,
    "sample_every": 20,
    "sample_length": 10,
}
START = time.monotonic()


def say(message: str) -> None:
    print(f"[compose-test {time.monotonic() - START:7.1f} s] {message}", flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    say(f"{name} ...")
    started = time.monotonic()
    yield
    say(f"{name}: ok in {time.monotonic() - started:.1f} s")


def fail(message: str, stack: Stack | None = None) -> CheckFailed:
    return CheckFailed(message + (f"\n{stack.logs()}" if stack is not None else ""))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def env_file(path: Path, base_image: str, *, unlimited: bool = False) -> dict[str, str]:
    """.env.example filled in as its comments tell a user to, for the CPU stack built air-gapped.

    `unlimited`: the per-token rate limit lifted, as the benches lift it for `rnnlab serve`."""
    values = {
        "COMPOSE_FILE": "docker-compose.yml:docker-compose.cpu.yml",
        "COMPOSE_PROJECT_NAME": PROJECT,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "RNNLAB_API_TOKENS": secrets.token_hex(24),
        "TORCH_VARIANT": "cpu",
        "BASE_IMAGE": base_image,
        "TORCH_WHEELS": "local",
    }
    if unlimited:
        values |= {"RNNLAB_RATE_LIMIT_PER_MINUTE": "1e9", "RNNLAB_RATE_LIMIT_BURST": "100000"}
    text = (ROOT / ".env.example").read_text()
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", text)
        if n != 1:
            raise CheckFailed(f"{key} is not set exactly once in .env.example")
    path.write_text(text)
    path.chmod(0o600)
    return values


# --- HTTP, as a user's client ---------------------------------------------------------------------


def get_job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


def submit(client: httpx.Client, body: dict[str, Any]) -> int:
    response = client.post("/train", json=body)
    if response.status_code != 202:
        raise CheckFailed(f"POST /train answered {response.status_code}: {response.text}")
    return int(response.json()["id"])


def wait_finished(client: httpx.Client, stack: Stack, job_id: int, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = get_job(client, job_id)
        return job if job["status"] in FINISHED else None

    job = wait_for(f"job {job_id} to finish", finished, timeout, stack.logs)
    if job["status"] != "succeeded":
        raise fail(f"job {job_id} ended {job['status']}: {job}", stack)
    return job


def metric_steps(client: httpx.Client, job_id: int, name: str = "loss") -> list[int]:
    steps: list[int] = []
    after: int | None = -1
    while after is not None:
        page = client.get(f"/jobs/{job_id}/metrics", params={"name": name, "after_step": after}).json()
        steps += [point["step"] for point in page["items"]]
        after = page["next_after_step"]
    return steps


def assert_each_step_once(
    client: httpx.Client, job_id: int, total: int, stopped_at: int | None = None
) -> None:
    steps = metric_steps(client, job_id)
    if steps != sorted(set(steps)):
        dupes = sorted({s for s in steps if steps.count(s) > 1})
        raise CheckFailed(f"job {job_id}: duplicate or out-of-order metric steps {dupes[:20]}")
    cadence = set(range(TINY["log_every"], total + 1, TINY["log_every"]))
    if not cadence <= set(steps):
        raise CheckFailed(f"job {job_id}: missing metric steps {sorted(cadence - set(steps))[:20]}")
    extra = set(steps) - cadence - ({stopped_at} if stopped_at else set())
    if extra:
        raise CheckFailed(f"job {job_id}: metric steps off the cadence {sorted(extra)[:20]}")


def job_states(client: httpx.Client) -> list[tuple[int, str, int]]:
    """Every job's id, status and step: what must survive an outage or a restart of the stack."""
    response = client.get("/jobs", params={"limit": 100})
    response.raise_for_status()
    return [(job["id"], job["status"], job["step"]) for job in response.json()["items"]]


def generate(client: httpx.Client, job_id: int) -> str:
    params = {"job_id": job_id, "prompt": "The ", "length": 25, "temperature": 0}
    response = client.get("/generate", params=params)
    if response.status_code != 200:
        raise CheckFailed(f"/generate answered {response.status_code}: {response.text}")
    return str(response.json()["text"])


def generate_stream(client: httpx.Client, job_id: int) -> str:
    params = {"job_id": job_id, "prompt": "The ", "length": 25, "temperature": 0}
    chunks: list[str] = []
    last: dict[str, Any] = {}
    with client.stream("GET", "/generate/stream", params=params) as response:
        if response.status_code != 200:
            raise CheckFailed(f"/generate/stream answered {response.status_code}: {response.read()!r}")
        for line in response.iter_lines():
            if line.startswith("data: "):
                last = json.loads(line[len("data: ") :])
                chunks.append(last.get("text", ""))
    if last.get("finish_reason") != "length":
        raise CheckFailed(f"/generate/stream ended without finish_reason length: {last}")
    return "".join(chunks)


def answers(client: httpx.Client, path: str) -> int | None:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return None


# --- the steps ---------------------------------------------------------------------------------------


def check_migrate_ran_once_before_the_rest(stack: Stack) -> None:
    migrations = stack.containers("migrate")
    if len(migrations) != 1:
        raise fail(f"expected one migrate container, found {len(migrations)}", stack)
    migrate = stack.inspect(migrations[0])["State"]
    if migrate["Status"] != "exited" or migrate["ExitCode"] != 0:
        raise fail(f"migrate is {migrate['Status']} with exit code {migrate['ExitCode']}", stack)
    for service in ("api", "worker"):
        started = stack.state(service)["StartedAt"]
        # RFC 3339 with the same precision and zone from one daemon: the strings order as the times do.
        if started < migrate["FinishedAt"]:
            raise fail(
                f"{service} started at {started}, before migrate finished at {migrate['FinishedAt']}", stack
            )


def wait_api_healthy(stack: Stack, timeout: float = 300) -> None:
    def healthy() -> bool:
        ids = stack.containers("api")
        if not ids:
            return False
        state = stack.inspect(ids[-1])["State"]
        if state["Status"] == "exited":
            raise fail(f"api exited {state['ExitCode']}", stack)
        return bool(state.get("Health", {}).get("Status") == "healthy")

    wait_for("the api container's compose health check to say healthy", healthy, timeout, stack.logs)


def wait_ready(client: httpx.Client, stack: Stack, timeout: float = 180) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        try:
            response = client.get("/ready")
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    body = wait_for("/ready to be ok (database, broker and a live worker)", ready, timeout, stack.logs)
    if body["checks"].get("workers") != "ok":
        raise fail(f"/ready does not see the worker: {body}", stack)
    return body


def live_workers(client: httpx.Client) -> float:
    queue = "rnnlab"
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'rnnlab_workers{{queue="{queue}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass(frozen=True)
class Runner:
    name: str  # the worker's own name (hostname:pid) in its heartbeat row
    container: str
    pid: int  # the worker process, inside its container


def worker_process(name: str) -> tuple[int, str, str] | None:
    """The process of the worker that names itself `name` (hostname:pid): its pid, cgroup and command
    line; None when no process has that pid.

    Under host networking every replica has the host's hostname and, with `pid: host`, a host pid;
    the process's cgroup names the container it runs in.
    """
    pid = int(name.rsplit(":", 1)[1])
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return pid, cgroup, cmdline


def worker_running(client: httpx.Client, stack: Stack, job_id: int) -> Runner | None:
    """The worker that the running attempt names (`GET /jobs/{id}`), as a process of a worker container."""
    running = [a for a in get_job(client, job_id)["attempt_history"] if a["ended_at"] is None]
    if not running:
        return None
    name = running[-1]["worker"]
    process = worker_process(name)
    if process is None:
        return None
    pid, cgroup, cmdline = process
    if "rnnlab" not in cmdline or "worker" not in cmdline:
        raise fail(f"job {job_id}'s attempt names {name}, whose pid runs {cmdline!r}, not a worker", stack)
    for container in stack.containers("worker"):
        if stack.inspect(container)["Id"] in cgroup:
            return Runner(name, container, pid)
    raise fail(f"job {job_id} runs in {name}, a process of no worker container of this stack", stack)


def check_ran_in_a_worker_container(stack: Stack, job: dict[str, Any]) -> str:
    """The job's one attempt names a worker process of the worker container, on the CPU: its name."""
    attempts = job["attempt_history"]
    if len(attempts) != 1 or attempts[0]["device"] != "cpu":
        raise fail(f"job {job['id']}: expected one attempt on the cpu, got {attempts}", stack)
    name = attempts[0]["worker"]
    process = worker_process(name)
    if process is None:
        raise fail(
            f"job {job['id']} names worker {name}, but no process {name.rsplit(':', 1)[1]} runs", stack
        )
    container = stack.container("worker")
    if stack.inspect(container)["Id"] not in process[1]:
        raise fail(f"job {job['id']} names worker {name}, which is not in the worker container", stack)
    return f"{name} (worker container {stack.inspect(container)['Name'].lstrip('/')})"


def check_flower_lists_the_worker(stack: Stack) -> None:
    """Flower's workers page as its own UI reads it (`/workers?json=1`). Not `/api/workers`: Flower 2
    answers that 401 unless FLOWER_UNAUTHENTICATED_API opens its whole API (and CORS) to anyone who can
    reach the port, which the stack does not do."""
    url = f"http://127.0.0.1:{PORTS.flower}"

    def listed() -> list[str] | None:
        try:
            response = httpx.get(f"{url}/workers", params={"json": "1", "refresh": "1"}, timeout=15)
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        names = [str(w.get("hostname")) for w in response.json()["data"] if w.get("status")]
        return [name for name in names if name.startswith("celery@")] or None

    names = wait_for("Flower's workers page to list the worker", listed, 180, stack.logs)
    say(f"Flower lists {names}")


def check_images(stack: Stack, secrets_of_run: list[str]) -> None:
    """Every rnnlab image runs as uid 10001, and no layer's history holds this run's passwords or token."""
    for image in sorted({stack.service_image(name) for name in ("migrate", "api", "worker", "flower")}):
        config = json.loads(stack.docker("image", "inspect", image))[0]
        if config["Config"]["User"] != "10001:10001":
            raise CheckFailed(f"{image} runs as {config['Config']['User']!r}, not 10001:10001")
        history = stack.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
        if any(value in history for value in secrets_of_run):
            raise CheckFailed(f"{image}: a secret of this run is in its layer history")
        say(f"{image}: {config['Size'] / 1e9:.2f} GB, user {config['Config']['User']}")


def build_and_start(stack: Stack) -> None:
    """Build every image, start the stack with the monitoring profile, and wait for the API's health check."""
    with step("build every image (docker-compose build, air-gapped build arguments)"):
        # migrate, worker (CPU overlay) and flower build the api's image, same tag and same arguments
        # (tests/deploy/test_static.py holds them to that): one build, not four context uploads.
        stack.compose("build", "postgres", "redis", "api", timeout=3600)
        for image in {stack.service_image(name) for name in ("migrate", "api", "worker", "flower")}:
            stack.docker("image", "inspect", image)

    up_started = time.monotonic()
    with step("up: stores healthy, migrate, api, worker, flower"):
        stack.compose("--profile", "monitoring", "up", "-d", timeout=900)
        wait_api_healthy(stack)
    say(f"time to healthy (up to the api's health check): {time.monotonic() - up_started:.1f} s")


def bench(stack: Stack, values: dict[str, str]) -> None:
    """`--bench`: bench/bench_container.py against the stack's API, beside a bare `rnnlab serve`."""
    build_and_start(stack)
    token = values["RNNLAB_API_TOKENS"]
    url = f"http://127.0.0.1:{PORTS.api}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        wait_ready(client, stack)
    with step("bench/bench_container.py: the container's API against rnnlab serve"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "bench_container.py"), "--url", url, "--token", token],
            cwd=ROOT,
            check=False,
        )
        if result.returncode != 0:
            raise fail(f"bench/bench_container.py exited {result.returncode}", stack)


def scenario(stack: Stack, values: dict[str, str]) -> None:
    token = values["RNNLAB_API_TOKENS"]
    build_and_start(stack)
    with step("the images run as non-root and hold no secret in any layer"):
        check_images(stack, [values[k] for k in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "RNNLAB_API_TOKENS")])
    with step("the api container: CPU-only torch, and the native decode step built for it loads"):
        probe = (
            "import sys, torch; from models.native import load; "
            "sys.exit('torch has CUDA ' + str(torch.version.cuda) if torch.version.cuda else "
            "None if load() is not None else 'the native decode step does not load')"
        )
        stack.docker("exec", stack.container("api"), "python", "-c", probe)

    with httpx.Client(
        base_url=f"http://127.0.0.1:{PORTS.api}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        with step("migrate ran once and exited 0 before api and worker started"):
            check_migrate_ran_once_before_the_rest(stack)
        with step("/ready is ok and sees the worker"):
            wait_ready(client, stack)
        with step("Flower (monitoring profile, the project's image) lists the worker"):
            check_flower_lists_the_worker(stack)

        with step("train a small text job in the worker container"):
            text_job = submit(client, {**TEXT, "train_steps": 60})
            finished = wait_finished(client, stack, text_job, timeout=600)
            assert_each_step_once(client, text_job, 60)
            ran_in = check_ran_in_a_worker_container(stack, finished)
            say(f"job {text_job} ran in {ran_in}")
        with step("/generate and /generate/stream answer from its checkpoint"):
            text = generate(client, text_job)
            streamed = generate_stream(client, text_job)
            if len(text) != 25 or streamed != text:
                raise CheckFailed(f"/generate gave {text!r}, the stream {streamed!r}")

        with step("docker kill the worker mid-job: restarted, resumed from its checkpoint, each step once"):
            total = 1000
            long_job = submit(client, {**PALINDROME, "train_steps": total, "checkpoint_every": 50})

            def checkpointed() -> dict[str, Any] | None:
                job = get_job(client, long_job)
                if job["status"] in FINISHED:
                    raise fail(f"job {long_job} finished before the worker was killed: {job}", stack)
                return job if job["status"] == "running" and job["latest_checkpoint_id"] is not None else None

            wait_for("the long job's first checkpoint", checkpointed, 300, stack.logs)
            runner = wait_for(
                f"a worker row running job {long_job}",
                lambda: worker_running(client, stack, long_job),
                60,
                stack.logs,
            )
            worker_name = stack.inspect(runner.container)["Name"].lstrip("/")
            say(f"job {long_job} runs in worker {runner.name}, pid {runner.pid} of container {worker_name}")
            before = stack.inspect(runner.container)["State"]
            # SIGKILL to the worker process, as the OOM killer or a crash would end it. Not `docker kill`:
            # Docker counts that as a manual stop, which a restart policy never undoes.
            stack.docker("exec", runner.container, "sh", "-c", f"kill -KILL {runner.pid}")
            killed = get_job(client, long_job)

            def restarted() -> bool:
                state = stack.inspect(runner.container)["State"]
                return bool(state["Running"] and state["StartedAt"] != before["StartedAt"])

            wait_for("the restart policy to start the killed worker again", restarted, 120, stack.logs)
            resume_started = time.monotonic()
            job = wait_finished(client, stack, long_job, timeout=600)
            say(
                f"resumed and finished {time.monotonic() - resume_started:.1f} s after the restart "
                f"(killed at step {killed['step']}, attempts {job['attempts']})"
            )
            if job["attempts"] < 2 or job["step"] != total:
                raise fail(f"job {long_job} after the kill: {job}", stack)
            assert_each_step_once(client, long_job, total, stopped_at=killed["step"])

        with step("stop the database: the API answers 503, then recovers on its own, nothing lost"):
            jobs_before = job_states(client)
            stack.compose("stop", "postgres", timeout=120)
            wait_for(
                "GET /jobs to answer 503 while the database is down",
                lambda: answers(client, "/jobs") == 503,
                60,
                stack.logs,
            )
            stack.compose("start", "postgres", timeout=120)
            wait_for(
                "GET /jobs to answer 200 again", lambda: answers(client, "/jobs") == 200, 120, stack.logs
            )
            wait_ready(client, stack)
            if job_states(client) != jobs_before:
                raise fail("the jobs listed after the database came back differ from before", stack)

        with step("--scale worker=2: eight jobs, each run exactly once"):
            stack.compose("up", "-d", "--no-deps", "--scale", "worker=2", "worker", timeout=600)
            wait_for("two live workers in /metrics", lambda: live_workers(client) >= 2, 180, stack.logs)
            jobs = [submit(client, {**PALINDROME, "train_steps": 40, "seed": i}) for i in range(8)]
            ran_by: dict[str, int] = {}
            for job_id in jobs:
                job = wait_finished(client, stack, job_id, timeout=900)
                if job["attempts"] != 1 or len(job["attempt_history"]) != 1:
                    raise fail(f"job {job_id}: {job['attempts']} attempts, {job['attempt_history']}", stack)
                assert_each_step_once(client, job_id, 40)
                worker = job["attempt_history"][0]["worker"]
                ran_by[worker] = ran_by.get(worker, 0) + 1
            say(f"jobs per worker: {ran_by}")

        listing = job_states(client)
        loss = metric_steps(client, long_job)

    with step("down, then up: jobs, metrics and checkpoints kept in the named volumes"):
        stack.compose("--profile", "monitoring", "down", "--timeout", "60", timeout=600)
        stack.compose("up", "-d", timeout=900)
        wait_api_healthy(stack)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS.api}", timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            if job_states(client) != listing:
                raise fail("the jobs after down/up differ from before", stack)
            if metric_steps(client, long_job) != loss:
                raise fail("the long job's metrics after down/up differ from before", stack)
            if generate(client, text_job) != text:
                raise fail("generation from the kept checkpoint differs after down/up", stack)

    with step("down -v removes the containers and the volumes"):
        stack.compose("--profile", "monitoring", "down", "--volumes", "--timeout", "60", timeout=600)
        label = f"label=com.docker.compose.project={stack.project}"
        left = stack.docker("ps", "-a", "-q", "--filter", label).split()
        volumes = stack.docker("volume", "ls", "-q", "--filter", label).split()
        if left or volumes:
            raise CheckFailed(f"after down -v: containers {left}, volumes {volumes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run compose-test", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and the daemon up at the end to look at (after a failed check or --bench)",
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="instead of the checks: start the stack and run bench/bench_container.py against its API",
    )
    args = parser.parse_args(argv)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(f"compose-test: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    # One compose test per machine at a time: two share the project name, the ports and the private
    # daemon, which the first to finish stops under the other. The lock dies with its process.
    engines.RUN_DIR.mkdir(parents=True, exist_ok=True)
    lock = (engines.RUN_DIR / "compose-test.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another compose test runs on this machine: waiting for it to end")
        fcntl.flock(lock, fcntl.LOCK_EX)
    busy = [f"{name} {port}" for name, port in vars(PORTS).items() if not port_free(port)]
    if busy:
        print(f"compose-test: 127.0.0.1 ports in use: {', '.join(busy)}", file=sys.stderr)
        return 1

    work = ROOT / "var" / "compose-test"
    work.mkdir(parents=True, exist_ok=True)
    engine: engines.Engine | None = None
    stack: Stack | None = None
    try:
        with step("docker engine, Debian base image and torch wheel"):
            engine = engines.start_engine()
            base = engines.ensure_base_image(engine)
            engines.ensure_torch_wheel(ROOT / "wheels")
        values = env_file(work / "env", base, unlimited=args.bench)
        files = [
            ROOT / "docker-compose.yml",
            ROOT / "docker-compose.cpu.yml",
            override.write(work / "override.yml", PORTS, base),
        ]
        stack = Stack(
            engine,
            ROOT,
            files,
            work / "env",
            PROJECT,
            {
                "EXTRA_CA_CERT": engines.extra_ca_certificates(),
            },
        )
        merged = stack.compose("--profile", "monitoring", "config", timeout=120).stdout
        (work / "stack.yml").write_text(override.without_ports(merged))
        (work / "stack.yml").chmod(0o600)  # interpolated: it holds this run's generated passwords
        stack.files = [work / "stack.yml"]
        with step("remove what an earlier run left"):
            stack.remove_everything()
        if args.bench:
            bench(stack, values)
            say("bench done")
        else:
            scenario(stack, values)
            say("every check passed")
        return 0
    except (CheckFailed, engines.EngineError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if stack is not None and not args.keep:
            with step("tear down"):
                stack.remove_everything()
        if engine is not None and not args.keep:
            engine.stop()
