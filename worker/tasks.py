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
from app.services import runs
from app.settings import DEFAULT_KEEP_CHECKPOINTS, get_settings
from worker.broker import ensure_broker_folders
from worker.celery_app import TRAIN_TASK, celery_app

log = logging.getLogger(__name__)

# Set when the worker starts a warm shutdown (SIGTERM / SIGINT): the running job checkpoints and yields.
shutting_down = threading.Event()


@signals.worker_shutting_down.connect
def _on_shutdown(**_: Any) -> None:
    shutting_down.set()


@signals.worker_ready.connect
def _requeue_orphans_on_start(**_: Any) -> None:
    settings = get_settings()
    requeue_orphans(lease_seconds=settings.lease_seconds)


def requeue_orphans(*, lease_seconds: float | None) -> list[int]:
    """Release jobs whose worker died (see `runs.release_orphans`) and send their tasks again."""
    settings = get_settings()
    with sessionmaker_for(settings.resolved_database_url)() as session:
        job_ids = runs.release_orphans(session, lease_seconds=lease_seconds)
    if job_ids:
        ensure_broker_folders(settings)
    for job_id in job_ids:
        log.warning("job %s was orphaned by a dead worker; queued again", job_id, extra={"job_id": job_id})
        celery_app.send_task(TRAIN_TASK, args=[job_id], queue=settings.queue)
    return job_ids


@celery_app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_job(job_id: int) -> str:
    if shutting_down.is_set():
        # Delivered while this worker is stopping: leave it for the next worker untouched.
        raise Reject(f"worker shutting down; job {job_id} left queued", requeue=True)
    settings = get_settings()
    outcome = run_job(
        job_id,
        sessions=sessionmaker_for(settings.resolved_database_url),
        lease_seconds=settings.lease_seconds,
        interrupted=shutting_down.is_set,
        keep_checkpoints=settings.keep_checkpoints,
    )
    if outcome == "requeued":
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
    """Run one job to its end; returns the outcome (succeeded, failed, cancelled, requeued, skipped...)."""
    from models.train import train

    with sessions() as session:
        token = runs.claim(session, job_id, lease_seconds=lease_seconds)
    if token is None:
        log.info(
            "job %s is not claimable (finished, cancelled or running elsewhere)",
            job_id,
            extra={"job_id": job_id},
        )
        return "skipped"
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
            keep_checkpoints=keep_checkpoints,
        )
        result = train(config, data, recorder, resume=resume)
    except runs.LeaseLost:
        log.warning("job %s was taken from this worker; stopping", job_id, extra={"job_id": job_id})
        return "lease lost"
    except Exception as exc:
        log.exception("job %s failed", job_id, extra={"job_id": job_id})
        with sessions() as session:
            runs.finish(session, job_id, token, status="failed", error=f"{type(exc).__name__}: {exc}")
        return "failed"

    with sessions() as session:
        if not result.stopped:
            runs.finish(session, job_id, token, status="succeeded", step=result.step)
            return "succeeded"
        if recorder.interrupted and not recorder.cancelled and runs.requeue(session, job_id, token):
            return "requeued"
        runs.finish(session, job_id, token, status="cancelled", step=result.step)
        return "cancelled"
