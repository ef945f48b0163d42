"""Log lines on stderr, text or JSON, with the job context (`job_id`, `step`) on every line of a job."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from app.core.settings import Settings, get_settings
from app.observability.context import ContextFilter

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Printed first and always (null when absent), so every line of a job can be found by `job_id`.
_CONTEXT_KEYS = ("job_id", "step")
# uvicorn's copy of the message with ANSI colours: noise in a log file.
_DROPPED_EXTRAS = frozenset({"color_message"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, step and any other `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            payload[key] = getattr(record, key, None)
        for key, value in vars(record).items():
            if key in _RECORD_ATTRS or key in payload or key in _DROPPED_EXTRAS or key.startswith("_"):
                continue
            payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # default=str: an extra value that is not JSON (a UUID, a Path) must not lose the whole line.
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [job=.. step=..] message`: the job context only when the record has it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS if getattr(record, key, None) is not None
        ]
        record.context = f"[{' '.join(parts)}] " if parts else ""
        return super().format(record)


# Loggers that install their own handlers or stop propagating; they are routed to the root handler.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker")


def configure_logging(settings: Settings | None = None) -> None:
    """Configure root, uvicorn and celery loggers from `settings.log_format` (text|json) and
    `settings.log_level` (`RNNLAB_LOG_FORMAT`, `RNNLAB_LOG_LEVEL`; default: the process's settings).

    Safe to call more than once (the root handler is replaced, not added). In the worker, connect it to
    `celery.signals.setup_logging` so that Celery does not install its own handlers over it.
    """
    settings = settings or get_settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in _FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
