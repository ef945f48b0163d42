"""Liveness (`/health`) and readiness (`/ready`: database and broker reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.schemas import Health
from app.services.health import check_broker, check_database

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Health, responses={503: {"model": Health}})
def ready(request: Request) -> JSONResponse:
    checks = {
        "database": check_database(request.app.state.sessionmaker),
        "broker": check_broker(request.app.state.celery),
    }
    down = [name for name, result in checks.items() if result != "ok"]
    body = Health(status=f"unavailable: {', '.join(down)} down" if down else "ok", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if down else 200)
