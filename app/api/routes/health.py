"""Liveness (`/health`) and readiness (`/ready`: database and broker reachable, a worker alive)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.schemas.resources import Health
from app.services.health import check_broker, check_database, check_workers

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
def ready(request: Request) -> JSONResponse:
    """503 naming what is down: the database, the broker, or every worker (queued jobs would wait)."""
    settings = request.app.state.settings
    sessions = request.app.state.sessionmaker
    checks = {
        "database": check_database(sessions),
        "broker": check_broker(request.app.state.celery),
        "workers": check_workers(
            sessions,
            queues=[settings.queue_of("cpu"), settings.queue_of("gpu")],
            lease_seconds=settings.lease_seconds,
        ),
    }
    down = [name for name, result in checks.items() if result != "ok"]
    body = Health(status=f"unavailable: {', '.join(down)} down" if down else "ok", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if down else 200)
