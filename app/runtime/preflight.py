"""Before a server process starts: can it reach its database and its broker? If not, one line.

`rnnlab api | serve | worker | migrate` call `check_services` first. A wrong RNNLAB_DATABASE_URL or
RNNLAB_BROKER_URL (a typo in a host name, a port nothing listens on) would otherwise surface as a
driver's traceback, or, for the worker, as Celery retrying the broker forever; under a restart policy
that is a crash loop whose cause is pages up. Instead the process exits 1 with one line naming the
variable and the host it could not reach. Each service is tried for `wait_seconds` first, so a stack
that starts its database a moment after the API does not fail for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

# One connection attempt's limit; a port that refuses fails at once, a black hole after this.
CONNECT_TIMEOUT_S = 3
RETRY_INTERVAL_S = 1.0


class ServiceUnreachable(Exception):
    """A service named by a setting did not answer; the message is the line the process prints."""


def database_address(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def broker_address(url: str) -> str:
    parsed = urlsplit(url)
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"


def _connect_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _connect_broker(url: str) -> None:
    from celery import Celery

    app = Celery("rnnlab-preflight", broker=url, set_as_current=False)
    app.conf.broker_connection_timeout = CONNECT_TIMEOUT_S
    with app.connection_for_write() as connection:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT_S
        )


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"


def _try(connect: Callable[[], None], *, what: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connect()
            return
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise ServiceUnreachable(f"{what}: {_reason(exc)}") from exc
        time.sleep(RETRY_INTERVAL_S)


def check_services(database_url: str, broker_url: str, *, wait_seconds: float) -> None:
    """Raise `ServiceUnreachable` unless the database and the broker answer; the embedded SQLite
    file and filesystem broker need no server and are not checked."""
    if not database_url.startswith("sqlite"):
        _try(
            lambda: _connect_database(database_url),
            what=f"cannot reach the database at {database_address(database_url)} (RNNLAB_DATABASE_URL)",
            wait_seconds=wait_seconds,
        )
    if not broker_url.startswith("filesystem"):
        _try(
            lambda: _connect_broker(broker_url),
            what=f"cannot reach the broker at {broker_address(broker_url)} (RNNLAB_BROKER_URL)",
            wait_seconds=wait_seconds,
        )
