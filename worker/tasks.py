"""The Celery task: the adapter from a delivered job id to `run_job` (worker/lifecycle.py).

It holds no training logic. It refuses work while the worker shuts down, tells the sweeper which job
this worker runs, runs the job with the worker's settings, and turns a job given back to the queue
into a rejected (not acknowledged) message so that the broker delivers it again.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import signals
from celery.exceptions import Reject

from app.core.db import sessionmaker_for
from app.core.queue import TRAIN_TASK
from app.core.settings import get_settings
from worker import sweeper
from worker.celery_app import celery_app
from worker.identity import this_runner
from worker.lifecycle import JobOutcome, run_job

# Set when the worker starts a warm shutdown (SIGTERM / SIGINT): the running job checkpoints and yields.
shutting_down = threading.Event()


def _on_shutdown(**_: Any) -> None:
    shutting_down.set()


# Connected by call, not as decorators: Celery is untyped, and a decorator would untype the handlers.
signals.worker_shutting_down.connect(_on_shutdown)


def train_job(job_id: int) -> str:
    """Run the job; returns its `JobOutcome` value (kept in the result backend)."""
    if shutting_down.is_set():
        # Delivered while this worker is stopping: leave it for the next worker untouched.
        raise Reject(f"worker shutting down; job {job_id} left queued", requeue=True)
    settings = get_settings()
    sweeper.current_job = job_id
    try:
        outcome = run_job(
            job_id,
            sessions=sessionmaker_for(settings.resolved_database_url),
            lease_seconds=settings.lease_seconds,
            interrupted=shutting_down.is_set,
            keep_checkpoints=settings.keep_checkpoints,
            runner=this_runner(),
        )
    finally:
        sweeper.current_job = None
    if outcome is JobOutcome.REQUEUED:
        # Not acknowledged: the broker delivers the task again, and it resumes from the checkpoint.
        raise Reject(f"worker shutting down; job {job_id} requeued", requeue=True)
    return outcome.value


# Registered by call, not as a decorator: Celery is untyped, and a decorator would untype `train_job`.
train_task = celery_app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)(train_job)
