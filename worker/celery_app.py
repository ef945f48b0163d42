"""The Celery application: one job at a time per worker, acknowledged only after it ran.

`celery -A worker.celery_app worker --pool=solo --concurrency=1 -Q rnnlab` (or `rnnlab worker`).
The solo pool runs the task in the worker's main process: it receives SIGTERM itself (so a job can
checkpoint and give itself back) and CUDA is initialised there, never before a fork.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from app.core.queue import ensure_broker_folders, make_celery
from app.core.settings import get_settings
from worker.sweeper import start_sweeper

__all__ = ["celery_app"]

# Importing this module (e.g. for `run_job` in a test) creates nothing on disk; a worker does, at start.
celery_app = make_celery(get_settings(), create_folders=False, include=["worker.tasks"])


def _create_broker_folders(**_: Any) -> None:
    ensure_broker_folders(get_settings())


def _setup_logging(**_: Any) -> None:
    from app.observability import configure_logging

    configure_logging()


def _use_thread_share(**_: Any) -> None:
    from app.runtime.threads import use_threads, worker_threads

    use_threads(worker_threads(get_settings()))


def _touch_ready_file(**_: Any) -> None:
    ready_file = get_settings().worker_ready_file
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.touch()


# Connected by call, not as decorators: Celery is untyped, and a decorator would untype the handlers.
signals.worker_init.connect(_create_broker_folders)
signals.worker_init.connect(_use_thread_share)
signals.setup_logging.connect(_setup_logging)
# In this order: a worker is ready once it consumes tasks AND its first heartbeat row is written.
signals.worker_ready.connect(start_sweeper)
signals.worker_ready.connect(_touch_ready_file)
