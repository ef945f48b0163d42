"""The Celery application: one job at a time per worker, acknowledged only after it ran.

`celery -A worker.celery_app worker --pool=solo --concurrency=1 -Q rnnlab` (or `rnnlab worker`).
The solo pool runs the task in the worker's main process: it receives SIGTERM itself (so a job can
checkpoint and give itself back) and CUDA is initialised there, never before a fork.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from app.settings import Settings, get_settings

TRAIN_TASK = "rnnlab.train"


def make_celery(settings: Settings) -> Celery:
    app = Celery("rnnlab", broker=settings.resolved_broker_url, include=["worker.tasks"])
    transport_options: dict[str, Any] = {}
    if settings.resolved_broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        folder.mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "polling_interval": settings.broker_polling_interval,
        }
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
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


celery_app = make_celery(get_settings())


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    from app.observability import configure_logging

    configure_logging()


@signals.worker_ready.connect
def _touch_ready_file(**_: Any) -> None:
    ready_file = get_settings().worker_ready_file
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.touch()
