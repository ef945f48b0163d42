"""Fixtures for the service tests: real PostgreSQL, real SQLite, real Redis, real worker processes.

PostgreSQL and Redis must be running: by default on 127.0.0.1, where `bash .ci/services.sh` installs and
starts them and creates the password-protected role `rnnlab_test`; RNNLAB_TEST_DATABASE_URL (a role with
CREATEDB, in its own database) and RNNLAB_TEST_REDIS_URL point the tests at other servers. A missing
one FAILS the tests that need it, never skips them. Each test session gets its own PostgreSQL database,
SQLite file and queue name, so concurrent runs on one machine never see each other's rows or steal each
other's tasks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, make_url, select

from app.core.db import engine_for, migrate, sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Checkpoint, Dataset, Job, Metric, Sample

REPO = Path(__file__).resolve().parent.parent
# The role and database .ci/services.sh creates; the tests log in with its password over TCP.
PG_ADMIN_URL = make_url(
    os.environ.get("RNNLAB_TEST_DATABASE_URL")
    or "postgresql://rnnlab_test:rnnlab_test@127.0.0.1:5432/rnnlab_test"
)
# Redis db 11 keeps the tests apart from a default db 0; isolation between runs comes from the queue names.
REDIS_URL = os.environ.get("RNNLAB_TEST_REDIS_URL") or "redis://127.0.0.1:6379/11"
PYTHON = sys.executable
# Every server the tests start accepts this token, and every client they make sends it; tests of
# authentication itself make their own clients without it.
API_TOKEN = "rnnlab-test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_for_status(client: Any, job_id: int, *statuses: str, timeout: float) -> dict[str, Any]:
    """Poll GET /jobs/{id} (a TestClient or an httpx.Client) until the job is in one of `statuses`."""

    def reached() -> dict[str, Any] | None:
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    what = f"job {job_id} to be {' or '.join(statuses)}"
    return wait_for(reached, timeout=timeout, what=what, interval=0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any RNNLAB_* variable but the test token, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNLAB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["RNNLAB_API_TOKENS"] = API_TOKEN
    return env | values


def settings_env(settings: Settings) -> dict[str, str]:
    """The RNNLAB_* variables that make a subprocess use the same database, broker and queue."""
    return clean_env(
        RNNLAB_DATABASE_URL=settings.resolved_database_url,
        RNNLAB_BROKER_URL=settings.broker_url,
        RNNLAB_QUEUE=settings.queue,
        RNNLAB_DATA_DIR=str(settings.data_dir),
        RNNLAB_BROKER_POLLING_INTERVAL=str(settings.broker_polling_interval),
    )


def count_rows(settings: Settings) -> dict[str, int]:
    with sessionmaker_for(settings.resolved_database_url)() as session:
        return {
            t.__tablename__: session.scalar(select(func.count()).select_from(t))
            for t in (Job, Metric, Sample, Checkpoint, Dataset)
        }


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, wait with a deadline, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def api_client(port: int, **kwargs: Any) -> Any:
    """An httpx.Client for a server started by `start_server`, sending the test token."""
    import httpx

    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60, **kwargs)


def start_server(
    cmd: list[str], env: dict[str, str], log_path: Path, port: int, *, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """An `rnnlab api | serve` subprocess, once it answers: `serve` on /ready (its worker beats too),
    `api` on /health (its /ready waits for a worker, which the test may start only afterwards).

    `new_session` puts it in a process group of its own, so a test can kill it with its children.
    """
    import httpx

    probe = "/ready" if "serve" in cmd else "/health"

    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout=120, what=f"{' '.join(cmd[2:4])} to be ready", interval=0.25)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def start_worker(
    settings: Settings, log_path: Path, *, rnnlab_flags: Sequence[str] | None = None, **extra_env: str
) -> subprocess.Popen[bytes]:
    """A real worker subprocess on the settings' database and queue, once it consumes tasks.

    By default `celery worker` on the settings' queue; with `rnnlab_flags`, `rnnlab worker <flags>`
    (the entry point the compose file runs), which picks its queue from what it declares.
    """
    ready = log_path.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    env = settings_env(settings) | {"RNNLAB_WORKER_READY_FILE": str(ready)} | extra_env
    cmd = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        settings.queue,
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if rnnlab_flags is None:
        env = {"RNNLAB_WORKER_QUEUE": "cpu"} | env  # what it consumes, whatever device it finds
    else:
        cmd = [PYTHON, "-m", "app.cli", "worker", *rnnlab_flags]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None, timeout=120, what="the worker to be ready"
        )
    except AssertionError:
        stop_process(proc)
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
    return proc


# ---------------------------------------------------------------------------------------------
# Databases and broker


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database (SQLAlchemy URL) created with the tests' role; dropped on exit."""
    import psycopg

    admin_url = PG_ADMIN_URL.set(drivername="postgresql")  # libpq's form, whatever driver was named
    try:
        admin = psycopg.connect(
            admin_url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)}: start it "
            f"(bash .ci/services.sh) or set RNNLAB_TEST_DATABASE_URL. {exc}"
        ) from exc
    name = f"{prefix}_{uuid4().hex[:12]}"
    # UTF8 whatever the server's default encoding: the app stores text (corpora, samples).
    admin.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    url = PG_ADMIN_URL.set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def migrated_postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database at the latest schema, dropped afterwards."""
    with fresh_postgres_database(prefix) as url:
        migrate(url)
        yield url
        engine_for(url).dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with migrated_postgres_database("rnnlab_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'rnnlab.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis is not reachable at {REDIS_URL}: start it (bash .ci/services.sh) or set "
            f"RNNLAB_TEST_REDIS_URL. {exc}"
        ) from exc
    return REDIS_URL


# The shared in-process clients serve the whole session, one token's requests from every test: the
# per-token rate limit would start answering 429 part way through. tests/api/test_limits.py checks
# the limiter with settings of its own.
UNLIMITED: dict[str, Any] = {"rate_limit_per_minute": 1e9, "rate_limit_burst": 1_000_000}


@pytest.fixture(scope="session")
def pg_settings(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """PostgreSQL + Redis, with a queue of this test run's own."""
    return Settings(
        _env_file=None,
        database_url=postgres_url,
        broker_url=redis_url,
        queue=f"rnnlab-test-{uuid4().hex[:10]}",
        data_dir=tmp_path_factory.mktemp("pg-data"),
        api_tokens=API_TOKEN,
        **UNLIMITED,
    )


@pytest.fixture(scope="session")
def sqlite_settings(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """SQLite + the filesystem broker (the embedded default)."""
    return Settings(
        _env_file=None,
        database_url=sqlite_url,
        broker_url="",
        data_dir=tmp_path_factory.mktemp("sqlite-data"),
        broker_polling_interval=0.1,
        api_tokens=API_TOKEN,
        **UNLIMITED,
    )


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Both backends: tests that take this fixture run once on each."""
    return request.getfixturevalue({"postgres": "pg_settings", "sqlite": "sqlite_settings"}[request.param])


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[Any]:
    """The API in-process; its tasks go to a queue no worker consumes.

    Tests that take it run jobs in-process with `run_job`, or look at jobs that stay queued; a real
    worker that another test started on the same database must not take their jobs from them.
    """
    from fastapi.testclient import TestClient

    from app.main import create_app

    unconsumed = settings.model_copy(update={"queue": f"{settings.queue}-unconsumed"})
    with TestClient(create_app(unconsumed), headers=AUTH) as test_client:
        yield test_client
    if unconsumed.broker_url.startswith("redis://"):
        import redis

        redis.Redis.from_url(unconsumed.broker_url).delete(unconsumed.queue)


@pytest.fixture(scope="session")
def pg_worker(
    pg_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on the PostgreSQL database and this run's Redis queue."""
    proc = start_worker(pg_settings, tmp_path_factory.mktemp("worker") / "worker.log")
    yield proc
    stop_process(proc)


@pytest.fixture(scope="session")
def pg_client(pg_settings: Settings) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(pg_settings), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def sqlite_client(sqlite_settings: Settings) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(sqlite_settings), headers=AUTH) as test_client:
        yield test_client


# Tiny configs: two shared CPU cores, so every job trains in well under a second per few dozen steps.
TINY_TEXT: dict[str, Any] = {
    "task": "text",
    "hidden_size": 16,
    "embedding_size": 8,
    "num_layers": 1,
    "seq_length": 16,
    "batch_size": 8,
    "train_steps": 40,
    "log_every": 10,
    "eval_every": 20,
    "checkpoint_every": 20,
    "sample_every": 20,
    "sample_length": 20,
    "device": "cpu",
}
TINY_PALINDROME: dict[str, Any] = {
    "task": "palindrome",
    "model": "lstm",
    "input_length": 5,
    "hidden_size": 16,
    "batch_size": 16,
    "train_steps": 40,
    "log_every": 10,
    "eval_every": 20,
    "checkpoint_every": 20,
    "device": "cpu",
}
# Trains until cancelled, slowly enough to be caught between checkpoints (crash and fault tests).
ENDLESS_PALINDROME = TINY_PALINDROME | {
    "model": "rnn",
    "hidden_size": 8,
    "batch_size": 8,
    "train_steps": 1_000_000,
    "log_every": 10,
    "eval_every": 1_000_000,
    "checkpoint_every": 200,
}
