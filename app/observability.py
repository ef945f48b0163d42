"""Logs and Prometheus metrics for the API and the worker.

Two entry points are called by the rest of the service:

- ``configure_logging()`` once per process (API and worker), before anything logs;
- ``install_observability(app)`` once per FastAPI app: it counts requests and serves ``GET /metrics``.

The API and the worker are separate processes, so what the worker knows (jobs by status, training
speed) is read from the database at scrape time by ``JobsCollector``, and the queue depth from the
broker; a scrape never fails because one of them is down, it only leaves those series out and counts
the failure in ``rnnlab_scrape_errors_total``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# Logging

# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Printed first and always (null when absent), so every line of a job can be found by `job_id`.
_CONTEXT_KEYS = ("job_id", "step")
# uvicorn's copy of the message with ANSI colours: noise in a log file.
_DROPPED_EXTRAS = frozenset({"color_message"})

# Job context of the current task or thread, added to records that do not carry their own `extra=`.
# Immutable default (a tuple of pairs): a shared mutable dict would leak fields between contexts.
_log_context: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar(
    "rnnlab_log_context", default=()
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block every log record gets these fields (e.g. `job_id`) unless it sets them itself.

    The worker wraps a job in `with log_context(job_id=job_id):`, so Celery's and the loop's own lines
    can be found by job id too.
    """
    token = _log_context.set(tuple({**dict(_log_context.get()), **fields}.items()))
    try:
        yield
    finally:
        _log_context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _log_context.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


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


def configure_logging() -> None:
    """Configure root, uvicorn and celery loggers from `RNNLAB_LOG_FORMAT` (text|json) and `RNNLAB_LOG_LEVEL`.

    Safe to call more than once (the root handler is replaced, not added). In the worker, connect it to
    `celery.signals.setup_logging` so that Celery does not install its own handlers over it.
    """
    fmt = os.environ.get("RNNLAB_LOG_FORMAT", "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"RNNLAB_LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    level = os.environ.get("RNNLAB_LOG_LEVEL", "INFO").strip().upper()

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


# ---------------------------------------------------------------------------------------------------
# Process-wide metrics: requests and generation speed, recorded where they happen.

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "rnnlab_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "rnnlab_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    registry=REGISTRY,
)
GENERATED_CHARS = Counter(
    "rnnlab_generated_characters", "Characters generated by /generate.", registry=REGISTRY
)
GENERATION_SECONDS = Counter(
    "rnnlab_generation_seconds", "Time spent generating characters.", registry=REGISTRY
)
GENERATION_SPEED = Histogram(
    "rnnlab_generation_characters_per_second",
    "Generation throughput per request (characters / second).",
    buckets=(10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, float("inf")),
    registry=REGISTRY,
)


def observe_generation(chars: int, seconds: float) -> None:
    """Record one generation of `chars` characters that took `seconds`; call it from the generation service.

    Characters/s over time is
    `rate(rnnlab_generated_characters_total) / rate(rnnlab_generation_seconds_total)`;
    the histogram gives the per-request distribution.
    """
    if chars < 0 or seconds < 0:
        raise ValueError(f"chars and seconds must be >= 0, got {chars}, {seconds}")
    GENERATED_CHARS.inc(chars)
    GENERATION_SECONDS.inc(seconds)
    if seconds > 0:
        GENERATION_SPEED.observe(chars / seconds)


# Unmatched paths share one label, so scanning for random URLs cannot grow the series without bound.
UNMATCHED_ROUTE = "<unmatched>"


class RequestMetricsMiddleware:
    """Pure ASGI middleware: counts and times each request under its route template (`/jobs/{job_id}`)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before sending a response
        start = time.perf_counter()

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # FastAPI's router puts the matched route into the (shared, mutated) scope.
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------
# Scrape-time metrics: jobs (database) and queue depth (broker).

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _engine(database_url: str):
    from app.db import engine_for

    # The app's own engine: same pool, and SQLite gets its WAL and busy-timeout pragmas.
    return engine_for(database_url)


def job_counts(database_url: str) -> dict[str, int]:
    """Number of jobs per status (every known status present, zero when none)."""
    from sqlalchemy import func, select

    from app.tables import Job

    with _engine(database_url).connect() as conn:
        rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    counts = dict.fromkeys(JOB_STATUSES, 0)
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def running_jobs(database_url: str) -> list[tuple[str, int, float | None]]:
    """(job id, step, steps/s) of each running job, as its worker last wrote them."""
    from sqlalchemy import select

    from app.tables import Job

    query = select(Job.id, Job.step, Job.steps_per_second).where(Job.status == "running").order_by(Job.id)
    with _engine(database_url).connect() as conn:
        return [(str(job_id), int(step or 0), rate) for job_id, step, rate in conn.execute(query)]


def queue_depth(broker_url: str, queue: str, transport_options: dict | None = None) -> int:
    """Messages waiting in `queue`: Redis LLEN (all priority lists), or files in a filesystem transport."""
    scheme = urlsplit(broker_url).scheme
    if scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            # Celery's Redis transport keeps one list per priority: `queue` and `queue\x06\x16N`.
            sep = "\x06\x16"
            keys = [queue] + [f"{queue}{sep}{p}" for p in range(10)]
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                return int(sum(pipe.execute()))
        finally:
            client.close()
    if scheme == "filesystem":
        folder = (transport_options or {}).get("data_folder_in")
        if not folder:
            raise ValueError("filesystem broker without transport option data_folder_in")
        # kombu names each message `<timestamp>_<uuid>.<queue>.msg`.
        return sum(1 for p in Path(folder).glob(f"*.{queue}.msg"))
    if scheme == "memory":
        return 0
    raise ValueError(f"queue depth is not supported for broker scheme {scheme!r}")


class JobsCollector(Collector):
    """Reads jobs by status, steps/s of running jobs and queue depth at scrape time; never raises."""

    def __init__(
        self,
        database_url: Callable[[], str],
        broker_url: Callable[[], str],
        queue: Callable[[], str],
        transport_options: Callable[[], dict | None] = lambda: None,
    ) -> None:
        self._database_url = database_url
        self._broker_url = broker_url
        self._queue = queue
        self._transport_options = transport_options
        self._errors = dict.fromkeys(("database", "broker"), 0)

    def describe(self) -> Iterable:
        # Empty: describing would run a scrape at registration time (auto_describe) against the database.
        return []

    def collect(self) -> Iterable:
        try:
            counts = job_counts(self._database_url())
            running = running_jobs(self._database_url())
        except Exception as exc:
            self._errors["database"] += 1
            log.warning("metrics: cannot read jobs from the database: %s", exc)
        else:
            jobs = GaugeMetricFamily("rnnlab_jobs", "Jobs by status.", labels=["status"])
            for status, n in sorted(counts.items()):
                jobs.add_metric([status], n)
            yield jobs
            # One series per running job only: finished jobs drop out, so the label set stays small.
            labels = ["job_id"]
            speed = GaugeMetricFamily(
                "rnnlab_training_steps_per_second", "Steps per second of running jobs.", labels=labels
            )
            step = GaugeMetricFamily("rnnlab_training_step", "Current step of running jobs.", labels=labels)
            for job_id, current, rate in running:
                step.add_metric([job_id], current)
                if rate is not None:
                    speed.add_metric([job_id], rate)
            yield speed
            yield step

        queue = ""
        try:
            queue = self._queue()
            depth = queue_depth(self._broker_url(), queue, self._transport_options())
        except Exception as exc:
            self._errors["broker"] += 1
            log.warning("metrics: cannot read the queue depth from the broker: %s", exc)
        else:
            gauge = GaugeMetricFamily(
                "rnnlab_queue_depth", "Messages waiting in the queue.", labels=["queue"]
            )
            gauge.add_metric([queue], depth)
            yield gauge

        errors = CounterMetricFamily(
            "rnnlab_scrape_errors", "Scrapes that could not read a source.", labels=["source"]
        )
        for source, n in sorted(self._errors.items()):
            errors.add_metric([source], n)
        yield errors


def _settings(app: FastAPI) -> Any:
    """The app's settings: `app.state.settings` when the factory set it, else the process-wide ones."""
    settings = getattr(app.state, "settings", None)
    if settings is None:
        from app.settings import get_settings

        settings = get_settings()
    return settings


def _transport_options(settings: Any) -> dict | None:
    if settings.resolved_broker_url.startswith("filesystem"):
        # The same folder worker/celery_app.py gives kombu's filesystem transport.
        return {"data_folder_in": str(settings.broker_folder)}
    return None


def install_observability(app: FastAPI) -> None:
    """Count and time every request, and serve `GET /metrics` (Prometheus text format) on `app`."""
    app.add_middleware(RequestMetricsMiddleware)

    scrape_registry = CollectorRegistry(auto_describe=False)
    scrape_registry.register(
        JobsCollector(
            database_url=lambda: _settings(app).resolved_database_url,
            broker_url=lambda: _settings(app).resolved_broker_url,
            queue=lambda: _settings(app).queue,
            transport_options=lambda: _transport_options(_settings(app)),
        )
    )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body = generate_latest(REGISTRY) + generate_latest(scrape_registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)
