"""The database errors that mean "not reachable right now", and retrying a write through them.

PostgreSQL restarting (or a SQLite file locked past its busy timeout) surfaces as one of these; the
API answers 503 for them (app/core/errors.py) and the worker waits them out (`retry_db`) rather than
failing a job that would have finished a few seconds later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic, sleep
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
FIRST_DELAY_S, MAX_DELAY_S = 0.2, 5.0


def retry_db(attempt: Callable[[], T], *, what: str, give_up_after: float) -> T:
    """Run `attempt` (one whole transaction) until the database answers, backing off exponentially.

    After `give_up_after` seconds the last error is raised: past the lease, the job is presumed dead
    and another worker may hold it, so waiting longer would not help it.
    """
    deadline = monotonic() + give_up_after
    delay = FIRST_DELAY_S
    while True:
        try:
            return attempt()
        except DATABASE_UNAVAILABLE as exc:
            if monotonic() + delay > deadline:
                raise
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("database unavailable (%s); retrying %s in %.1f s", first_line, what, delay)
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
