"""Dependencies shared by the routers: the database session, settings, model cache and the queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db import SessionDep
from app.queue import Enqueue, enqueuer
from app.services.generation import ModelCache
from app.settings import Settings


# `app.state` is untyped; main.create_app is what puts these objects there.
def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_cache(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.model_cache
    return cache


def get_enqueue(request: Request) -> Enqueue:
    return enqueuer(request.app.state.celery, request.app.state.settings.queue)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]

__all__ = ["CacheDep", "EnqueueDep", "SessionDep", "SettingsDep"]
