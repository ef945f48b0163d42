"""Dependencies shared by the routers: the database session, settings, model cache and the queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db import SessionDep
from app.services.generation import ModelCache
from app.services.jobs import Enqueue
from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


def get_enqueue(request: Request) -> Enqueue:
    celery = request.app.state.celery
    queue = request.app.state.settings.queue

    def enqueue(job_id: int) -> None:
        from worker.broker import TRAIN_TASK

        celery.send_task(TRAIN_TASK, args=[job_id], queue=queue)

    return enqueue


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CacheDep = Annotated[ModelCache, Depends(get_cache)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]

__all__ = ["CacheDep", "EnqueueDep", "SessionDep", "SettingsDep"]
