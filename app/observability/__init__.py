"""Logs and Prometheus metrics for the API and the worker.

Two entry points are called by the rest of the service:

- `configure_logging()` once per process (API and worker), before anything logs;
- `install_observability(app)` once per FastAPI app: it counts requests and serves `GET /metrics`.

One module per job: `logs` (formatters, `configure_logging`), `context` (`log_context`), `metrics`
(process-wide registry: requests, generation speed), `collectors` (scrape-time jobs and queue depth)
and `workers_collector` (scrape-time live workers).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.core.settings import Settings, get_settings
from app.observability.collectors import JobsCollector
from app.observability.context import log_context
from app.observability.logs import configure_logging
from app.observability.metrics import REGISTRY, RequestMetricsMiddleware, observe_generation, observe_latency
from app.observability.workers_collector import WorkersCollector

__all__ = [
    "configure_logging",
    "install_observability",
    "log_context",
    "observe_generation",
    "observe_latency",
]


def _settings(app: FastAPI) -> Settings:
    """The app's settings: `app.state.settings` when the factory set it, else the process-wide ones."""
    settings: Settings | None = getattr(app.state, "settings", None)
    return settings if settings is not None else get_settings()


def _transport_options(settings: Settings) -> dict[str, Any] | None:
    if settings.resolved_broker_url.startswith("filesystem"):
        # The same folder app/core/queue.py gives kombu's filesystem transport.
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
            queues=lambda: [_settings(app).queue_of("cpu"), _settings(app).queue_of("gpu")],
            transport_options=lambda: _transport_options(_settings(app)),
        )
    )
    scrape_registry.register(
        WorkersCollector(
            database_url=lambda: _settings(app).resolved_database_url,
            lease_seconds=lambda: _settings(app).lease_seconds,
        )
    )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body = generate_latest(REGISTRY) + generate_latest(scrape_registry)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)
