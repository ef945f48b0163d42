"""A job's attempts: one row per claim, naming the worker and device that ran it and how it ended.

Written in the same transaction as the status move it describes (app/services/lease.py opens one at
`claim` and closes it at `finish` or `requeue`; app/services/supervision.py closes a dead worker's),
so the record never disagrees with the job row.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.tables import JobAttempt, utcnow


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The worker shut down and gave the job back; it resumes from its checkpoint.
    REQUEUED = "requeued"
    # The worker stopped beating (killed, lost): released by a sweep or taken over by another worker.
    WORKER_LOST = "worker lost"


@dataclass(frozen=True)
class Runner:
    """Who runs an attempt: the worker's name (`hostname:pid`, as in the workers table) and its device."""

    worker: str
    device: str


def this_process(device: str = "cpu") -> Runner:
    """This process as a runner: what `run_job` records when no worker identity is given (tests, CLI)."""
    return Runner(worker=f"{socket.gethostname()}:{os.getpid()}", device=device)


# Outcomes that end the job: what `GET /workers` counts as a worker's finished jobs.
FINISHING = (AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED, AttemptOutcome.CANCELLED)


def open_attempt(session: Session, job_id: int, *, number: int, runner: Runner) -> None:
    """Record attempt `number` as started now; an attempt still open is one whose worker was lost
    (a claim takes over a running job only when its heartbeat is stale). Does not commit."""
    close_open(session, job_id, outcome=AttemptOutcome.WORKER_LOST)
    session.add(
        JobAttempt(
            job_id=job_id, number=number, worker=runner.worker, device=runner.device, started_at=utcnow()
        )
    )


def close_open(session: Session, job_id: int, *, outcome: AttemptOutcome) -> None:
    """End the job's running attempt (if any) with `outcome`; does not commit."""
    session.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.ended_at.is_(None))
        .values(ended_at=utcnow(), outcome=outcome.value)
    )


def attempts_of(session: Session, job_id: int) -> Sequence[JobAttempt]:
    return session.scalars(
        select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
    ).all()


def finished_counts(session: Session, workers: Sequence[str]) -> dict[str, int]:
    """How many jobs each named worker brought to a final status."""
    if not workers:
        return {}
    rows = session.execute(
        select(JobAttempt.worker, func.count())
        .where(JobAttempt.worker.in_(workers), JobAttempt.outcome.in_([o.value for o in FINISHING]))
        .group_by(JobAttempt.worker)
    ).all()
    return {worker: count for worker, count in rows}
