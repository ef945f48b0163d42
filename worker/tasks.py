"""The training task: an adapter from a job row to `models.train.train` (no training logic here)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.exceptions import Reject
from sqlalchemy.orm import Session, sessionmaker

from app.db import sessionmaker_for
from app.db_retry import retry_db
from app.job_status import JobStatus
from app.queue import TRAIN_TASK
from app.services import runs
from app.settings import DEFAULT_KEEP_CHECKPOINTS, get_settings
from worker import sweeper
from worker.celery_app import celery_app

log = logging.getLogger(__name__)

# Outcomes of a delivered task that leave no final status: given back to the queue (worker shutting
# down), not claimable (finished, cancelled or running elsewhere), taken over by another worker.
REQUEUED, SKIPPED, LEASE_LOST = "requeued", "skipped", "lease lost"

# Set when the worker starts a warm shutdown (SIGTERM / SIGINT): the running job checkpoints and yields.
shutting_down = threading.Event()


def _on_shutdown(**_: Any) -> None:
    shutting_down.set()


# Connected by call, not as decorators: Celery is untyped, and a decorator would untype the handlers.
signals.worker_shutting_down.connect(_on_shutdown)


@celery_app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_job(job_id: int) -> str:
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
        )
    finally:
        sweeper.current_job = None
    if outcome == REQUEUED:
        # Not acknowledged: the broker delivers the task again, and it resumes from the checkpoint.
        raise Reject(f"worker shutting down; job {job_id} requeued", requeue=True)
    return outcome


def run_job(
    job_id: int,
    *,
    sessions: sessionmaker[Session],
    lease_seconds: float = 120.0,
    interrupted: Callable[[], bool] = lambda: False,
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
) -> str:
    """Run one job to its end; returns the outcome: the job's final status, or one of the three below."""
    from models.train import train

    with sessions() as session:
        token = runs.claim(session, job_id, lease_seconds=lease_seconds)
    if token is None:
        log.info(
            "job %s is not claimable (finished, cancelled or running elsewhere)",
            job_id,
            extra={"job_id": job_id},
        )
        return SKIPPED
    try:
        with sessions() as session:
            config, data, resume = runs.load_run(session, job_id)
            # A checkpoint from another job (`resume_from`) starts this job's own timeline at its step.
            start_step = resume["step"] if resume else 0
            runs.rewind(session, job_id, token, step=start_step)
        recorder = runs.JobRecorder(
            sessions,
            job_id,
            token,
            start_step=start_step,
            interrupted=interrupted,
            retry_seconds=lease_seconds,
            keep_checkpoints=keep_checkpoints,
        )
        result = train(config, data, recorder, resume=resume)
    except runs.LeaseLost:
        log.warning("job %s was taken from this worker; stopping", job_id, extra={"job_id": job_id})
        return LEASE_LOST
    except Exception as exc:
        log.exception("job %s failed", job_id, extra={"job_id": job_id})
        with sessions() as session:
            error = f"{type(exc).__name__}: {exc}"
            runs.finish(session, job_id, token, status=JobStatus.FAILED, error=error)
        return JobStatus.FAILED

    def settle() -> str:
        with sessions() as session:
            if not result.stopped:
                runs.finish(session, job_id, token, status=JobStatus.SUCCEEDED, step=result.step)
                return JobStatus.SUCCEEDED
            if recorder.interrupted and not recorder.cancelled and runs.requeue(session, job_id, token):
                return REQUEUED
            runs.finish(session, job_id, token, status=JobStatus.CANCELLED, step=result.step)
            return JobStatus.CANCELLED

    # Conditional moves: a retry after a commit whose answer was lost moves nothing the second time.
    return retry_db(settle, what=f"job {job_id}'s outcome", give_up_after=lease_seconds)
