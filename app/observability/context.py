"""The job context of the current task or thread, added to every log record written inside it."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

# Immutable default (a tuple of pairs): a shared mutable dict would leak fields between contexts.
_log_context: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar(
    "rnnlab_log_context", default=()
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block every log record gets these fields (e.g. `job_id`) unless it sets them itself.

    The worker runs each job inside `log_context(job_id=job_id)` (worker/lifecycle.py: `run_job`), so the
    lines written while the job runs, by the worker or by a library, can be found by job id too.
    """
    token = _log_context.set(tuple({**dict(_log_context.get()), **fields}.items()))
    try:
        yield
    finally:
        _log_context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the `log_context` fields onto a record that does not carry its own `extra=` for them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _log_context.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
