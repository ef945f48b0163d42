"""The FastAPI application factory. `/docs` and `/redoc` serve their assets locally (no CDN)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.access import AccessControl
from app.api.errors import install_error_handlers
from app.api.openapi import install_openapi
from app.api.rate_limit import RateLimiter
from app.api.routes import (
    analysis,
    checkpoints,
    datasets,
    experiments,
    generate,
    health,
    jobs,
    models,
    openai,
    score,
    sessions,
    workers,
    xray,
)
from app.core.db import sessionmaker_for
from app.core.queue import make_celery
from app.core.settings import Settings, get_settings
from app.generation.cache import ModelCache
from app.observability import install_observability
from app.services.session_cache import RecentSessions
from app.web.routes import install_dashboard

DESCRIPTION = """Train recurrent networks (palindrome digits, character-level text) and sample from them.

Queue a job with `POST /train`, follow it at `GET /jobs/{id}`, then `GET /generate?job_id=...`.

Every POST needs `Authorization: Bearer <token>` (a token from `RNNLAB_API_TOKENS`, or the one
`rnnlab serve` wrote to `var/api-token`): press **Authorize** and paste it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPIOffline(title="rnnlab", version="0.1.0", description=DESCRIPTION)
    app.state.settings = settings
    app.state.sessionmaker = sessionmaker_for(settings.resolved_database_url)
    app.state.celery = make_celery(settings)
    app.state.model_cache = ModelCache(
        settings.model_cache_size,
        max_batch=settings.generation_max_batch,
        max_waiting=settings.generation_max_waiting,
        native_decode=settings.native_decode,
        stream_interval_s=settings.generation_stream_interval_ms / 1000,
    )
    app.state.recent_sessions = RecentSessions()  # the sessions this server changed last
    install_error_handlers(app)
    for module in (
        jobs,
        experiments,
        analysis,
        checkpoints,
        datasets,
        models,
        generate,
        score,
        xray,
        sessions,
        openai,
        workers,
        health,
    ):
        app.include_router(module.router)
    install_dashboard(app)
    app.add_middleware(
        AccessControl,
        tokens=settings.api_token_list,
        protect_reads=settings.protect_reads,
        limiter=RateLimiter(per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst),
    )
    install_openapi(app, protect_reads=settings.protect_reads)
    install_observability(app)
    return app
