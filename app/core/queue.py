"""How the API and the worker reach the broker: one Celery configuration, tasks sent by name.

The API never imports the worker's code: it sends `TRAIN_TASK` by name through a client built here
(for its own settings), and the worker registers its task under the same name on an app built here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery

from app.core.settings import Settings

TRAIN_TASK = "rnnlab.train"

# Hands a stored job's id to the workers of a queue (the job row's `queue`, chosen by its device:
# app/services/routing.py); raises when the broker cannot take it.
Enqueue = Callable[[int, str], None]


def ensure_broker_folders(settings: Settings) -> None:
    """The filesystem broker's folders must exist before anything sends or receives through it."""
    if settings.resolved_broker_url.startswith("filesystem"):
        settings.broker_folder.mkdir(parents=True, exist_ok=True)


def make_celery(settings: Settings, *, create_folders: bool = True, include: Sequence[str] = ()) -> Celery:
    """A Celery app for `settings`; `include` names the task modules a worker imports at start."""
    app = Celery("rnnlab", broker=settings.resolved_broker_url, include=list(include))
    transport_options: dict[str, Any] = {}
    embedded = settings.resolved_broker_url.startswith("filesystem")
    if embedded:
        folder = settings.broker_folder
        if create_folders:
            ensure_broker_folders(settings)
        transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # kombu keeps its exchange table in ./control by default, i.e. wherever the process started.
            "control_folder": str(folder / "control"),
            "polling_interval": settings.broker_polling_interval,
        }
    elif settings.resolved_broker_url.startswith(("redis", "rediss")):
        # Explicit, not kombu's default: see Settings.broker_visibility_timeout for why the lease, not
        # this, keeps a job from running twice.
        transport_options = {"visibility_timeout": settings.broker_visibility_timeout}
    app.conf.update(
        task_default_queue=settings.queue,
        task_acks_late=True,  # a task lost with its worker is delivered again...
        task_reject_on_worker_lost=True,  # ...also when the worker process itself died
        worker_prefetch_multiplier=1,  # never hold a second job while training one
        worker_concurrency=1,
        task_ignore_result=True,  # outcomes live in the jobs table
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        # Task events let Flower (docker-compose's monitoring profile) show jobs as they run; the
        # embedded filesystem broker has no Flower to read them, so it does not pay for writing them.
        worker_send_task_events=not embedded,
        task_send_sent_event=not embedded,
    )
    return app


def enqueuer(celery: Celery) -> Enqueue:
    """An `Enqueue` that sends the training task for a job id to the queue named."""

    def enqueue(job_id: int, queue: str) -> None:
        celery.send_task(TRAIN_TASK, args=[job_id], queue=queue)

    return enqueue
