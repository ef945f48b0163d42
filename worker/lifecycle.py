"""A job's life on a worker, `run_job`: claim it, load it, train it, settle it; and its `JobOutcome`.

1. Claim: take the lease (app/services/lease.py), or skip a job that is finished, cancelled or
   running elsewhere.
2. Load (worker/run_loading.py) the config, data and checkpoint to resume from, and rewind the job's
   metrics and samples to that checkpoint's step (steps after it are trained again).
3. Train: `models.train.train` with a `JobRecorder` (worker/recorder.py) as its callbacks.
4. Settle: succeeded when the loop ran to its last step; when it stopped early, given back to the
   queue if the worker is shutting down, else cancelled. An exception fails the job, and a lost lease
   leaves it to whoever holds it now.

Every log line written inside `run_job` (its own, the recorder's database retries, whatever a library
logs meanwhile) carries the job's id: the whole job runs in `log_context(job_id=...)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from app.core.db_retry import retry_db
from app.core.job_status import JobStatus
from app.core.settings import DEFAULT_KEEP_CHECKPOINTS
from app.observability import log_context
from app.services import lease
from app.services.attempts import Runner
from worker.recorder import JobRecorder
from worker.run_loading import load_run

if TYPE_CHECKING:
    from models.train import TrainResult

log = logging.getLogger(__name__)


class JobOutcome(StrEnum):
    """What became of one delivery of a job (the Celery task stores the value in the result backend)."""

    # The job's final status, set by this worker.
    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value
    CANCELLED = JobStatus.CANCELLED.value
    # No final status: given back to the queue (worker shutting down), not claimable (finished,
    # cancelled or running elsewhere), or taken over by another worker while this one ran it.
    REQUEUED = "requeued"
    SKIPPED = "skipped"
    LEASE_LOST = "lease lost"


def run_job(
    job_id: int,
    *,
    sessions: sessionmaker[Session],
    lease_seconds: float = 120.0,
    interrupted: Callable[[], bool] = lambda: False,
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
    runner: Runner | None = None,
) -> JobOutcome:
    """Run one job to its end (see the module docstring); `interrupted` says the worker is stopping;
    `runner` is the worker and device its attempt record names (default: this process, cpu)."""
    with log_context(job_id=job_id):
        with sessions() as session:
            token = lease.claim(session, job_id, lease_seconds=lease_seconds, runner=runner)
        if token is None:
            log.info("job %s is not claimable (finished, cancelled or running elsewhere)", job_id)
            return JobOutcome.SKIPPED
        try:
            recorder, result = _train(
                job_id, token, sessions, lease_seconds, interrupted=interrupted, keep=keep_checkpoints
            )
        except lease.LeaseLost:
            log.warning("job %s was taken from this worker; stopping", job_id)
            return JobOutcome.LEASE_LOST
        except Exception as exc:
            log.exception("job %s failed", job_id)
            with sessions() as session:
                error = f"{type(exc).__name__}: {exc}"
                lease.finish(session, job_id, token, status=JobStatus.FAILED, error=error)
            return JobOutcome.FAILED
        return _settle(job_id, token, sessions, lease_seconds, result=result, recorder=recorder)


def _train(
    job_id: int,
    token: str,
    sessions: sessionmaker[Session],
    lease_seconds: float,
    *,
    interrupted: Callable[[], bool],
    keep: int,
) -> tuple[JobRecorder, TrainResult]:
    # torch is imported when a job runs, not when the worker (or a test) imports this module.
    from models.train import train

    with sessions() as session:
        run = load_run(session, job_id)
        # A checkpoint from another job (`resume_from`) starts this job's own timeline at its step.
        lease.rewind(session, job_id, token, step=run.start_step)
    recorder = JobRecorder(
        sessions,
        job_id,
        token,
        start_step=run.start_step,
        interrupted=interrupted,
        retry_seconds=lease_seconds,
        keep_checkpoints=keep,
    )
    return recorder, train(run.config, run.data, recorder, resume=run.resume)


def _settle(
    job_id: int,
    token: str,
    sessions: sessionmaker[Session],
    lease_seconds: float,
    *,
    result: TrainResult,
    recorder: JobRecorder,
) -> JobOutcome:
    """The final status of a loop that returned, or the job given back to the queue."""

    def attempt() -> JobOutcome:
        with sessions() as session:
            if not result.stopped:
                lease.finish(session, job_id, token, status=JobStatus.SUCCEEDED, step=result.step)
                return JobOutcome.SUCCEEDED
            if recorder.interrupted and not recorder.cancelled and lease.requeue(session, job_id, token):
                return JobOutcome.REQUEUED
            lease.finish(session, job_id, token, status=JobStatus.CANCELLED, step=result.step)
            return JobOutcome.CANCELLED

    # Conditional moves: a retry after a commit whose answer was lost moves nothing the second time.
    return retry_db(attempt, what=f"job {job_id}'s outcome", give_up_after=lease_seconds)
