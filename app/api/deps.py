"""Dependencies shared by the routers: the database session(s), settings, model cache and the queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import SessionDep
from app.core.queue import Enqueue, enqueuer
from app.core.settings import Settings
from app.generation.cache import ModelCache
from app.services.sessions import SessionContext, owner_of


# `app.state` is untyped; main.create_app is what puts these objects there. `async def` because FastAPI
# runs a plain `def` dependency in its thread pool: two thread hops per request for a getattr.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """For async routes: they open sessions inside the threads that do their blocking reads."""
    sessions: sessionmaker[Session] = request.app.state.sessionmaker
    return sessions


async def get_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


async def get_session_context(request: Request) -> SessionContext:
    """Everything the sessions' service keeps them with, in one dependency (one lookup per request)."""
    state = request.app.state
    return SessionContext(state.sessionmaker, state.model_cache, state.settings, state.recent_sessions)


async def get_owner(request: Request) -> str:
    """Who the caller is, for the resources a token owns (sessions): a digest of its bearer token. The
    access middleware has already refused an invalid token where one is needed."""
    return owner_of(request.headers.get("authorization"))


async def get_enqueue(request: Request) -> Enqueue:
    return enqueuer(request.app.state.celery)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
OwnerDep = Annotated[str, Depends(get_owner)]
SessionContextDep = Annotated[SessionContext, Depends(get_session_context)]

__all__ = [
    "CacheDep",
    "EnqueueDep",
    "OwnerDep",
    "SessionContextDep",
    "SessionDep",
    "SessionsDep",
    "SettingsDep",
]
