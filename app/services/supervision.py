"""Supervision: no job is lost to a dead worker or a broker that was down. Two mechanisms, one sweep.

The outbox. The database is the source of truth for queued work: a job is stored first, its task
sent after. A queued job with `dispatched_at` NULL is one the broker has not received (it was down
when the job was posted, or the job was given back after its worker died). Whoever sends it first
stamps the column with a conditional UPDATE and only then publishes, so the API and several sweeping
workers racing for one job send it once; a publish that fails clears the stamp again for the next
sweep. A task delivered twice anyway (a broker redelivering after a restart) is harmless:
`lease.claim` lets one delivery run the job and the others skip it.

Orphan release. A job whose worker died goes back to the queue (running -> queued), or fails once
its workers died `max_attempts` times (running -> failed): `release_orphans`.

`sweep` = release, then send what is unsent. Every worker runs it in its sweeper thread
(worker/sweeper.py), and `rnnlab serve` before it starts or restarts its only worker (app/cli.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from app.core.job_status import JobStatus
from app.core.queue import Enqueue
from app.core.tables import Checkpoint, Job, utcnow
from app.services.attempts import AttemptOutcome, close_open
from app.services.transitions import move, rows_updated

log = logging.getLogger(__name__)


def release_orphans(
    session: Session, *, queue: str, lease_seconds: float | None, max_attempts: int
) -> list[int]:
    """Give running jobs of `queue` whose worker is gone back to it; returns their ids (still to send).

    A worker killed outright (SIGKILL, power loss) leaves its job `running`, and on the filesystem
    broker its task message is already gone, so nothing would ever pick the job up again. A running
    job is orphaned when its heartbeat is older than the lease or, with `lease_seconds=None`, always:
    `rnnlab serve` calls it before it starts (or restarts) its only worker, when nothing can really be
    running. The job then resumes from its latest checkpoint; steps after it are recorded again, and
    metric writes are upserts, so they replace rather than duplicate.

    Each orphan counts as a crash; the `max_attempts`-th one fails the job instead (a job that kills
    every worker it runs on, out of memory say, must not be re-queued forever). Every move is a
    conditional UPDATE of one job, so of several workers sweeping at once only one releases it.
    """
    silent: list[ColumnElement[bool]] = [Job.queue == queue, Job.status == JobStatus.RUNNING]
    if lease_seconds is not None:
        silent.append(Job.heartbeat_at < utcnow() - timedelta(seconds=lease_seconds))
    released: list[int] = []
    for job_id in list(session.scalars(select(Job.id).where(*silent).order_by(Job.id))):
        # In this order, in one transaction: a poisoned job is failed, so the requeue then finds nothing.
        poisoned = _fail_poisoned(session, job_id, silent, max_attempts=max_attempts)
        requeued = _requeue_orphan(session, job_id, silent)
        if poisoned or requeued:
            close_open(session, job_id, outcome=AttemptOutcome.WORKER_LOST)
        session.commit()
        if poisoned:
            log.error(
                "job %s failed: its worker died %s times", job_id, max_attempts, extra={"job_id": job_id}
            )
        elif requeued:
            log.warning(
                "job %s was orphaned by a dead worker; queued again", job_id, extra={"job_id": job_id}
            )
            released.append(job_id)
    return released


def _fail_poisoned(
    session: Session, job_id: int, silent: list[ColumnElement[bool]], *, max_attempts: int
) -> bool:
    """running -> failed for an orphan whose workers died `max_attempts` times, this death included."""
    moved = move(
        session,
        Job.id == job_id,
        *silent,
        Job.crashes >= max_attempts - 1,
        from_=[JobStatus.RUNNING],
        to=JobStatus.FAILED,
        crashes=Job.crashes + 1,
        lease_token=None,
        steps_per_second=None,
        error=(
            f"its worker died {max_attempts} times (RNNLAB_MAX_ATTEMPTS={max_attempts}); "
            "the job may be what kills it (out of memory?)"
        ),
    )
    return moved == 1


def _requeue_orphan(session: Session, job_id: int, silent: list[ColumnElement[bool]]) -> bool:
    """running -> queued, unsent, at the step it will resume from."""
    # The steps the dead attempt made after its checkpoint are lost: while the job waits, its step
    # is where it will resume, so neither a user nor a poller sees progress that is not there.
    resume_step = (
        select(Checkpoint.step)
        .where(Checkpoint.id == func.coalesce(Job.latest_checkpoint_id, Job.resume_from))
        .scalar_subquery()
    )
    moved = move(
        session,
        Job.id == job_id,
        *silent,
        from_=[JobStatus.RUNNING],
        to=JobStatus.QUEUED,
        crashes=Job.crashes + 1,
        lease_token=None,
        steps_per_second=None,
        step=func.coalesce(resume_step, 0),
        dispatched_at=None,  # its message went with the worker (or comes back late, and is skipped)
    )
    return moved == 1


def sweep(
    session: Session, *, enqueue: Enqueue, queue: str, lease_seconds: float | None, max_attempts: int
) -> list[int]:
    """Release `queue`'s jobs whose worker died (see `release_orphans`), then send every queued job
    of it the broker never received (`dispatch_pending`); returns the ids sent."""
    release_orphans(session, queue=queue, lease_seconds=lease_seconds, max_attempts=max_attempts)
    return dispatch_pending(session, enqueue=enqueue, queue=queue)


class BrokerRefused(Exception):
    """The broker did not take a task; the job stays unsent for the next sweep."""


def dispatch_all(session: Session, job_ids: Sequence[int], *, enqueue: Enqueue) -> list[int]:
    """Send these queued, unsent jobs in order; returns the ids sent. The first refusal stops it:
    the broker is down, and the rest waits for the next sweep too."""
    sent: list[int] = []
    for job_id in job_ids:
        try:
            if _send(session, job_id, enqueue):
                sent.append(job_id)
        except BrokerRefused:
            break
    return sent


def dispatch_pending(session: Session, *, enqueue: Enqueue, queue: str) -> list[int]:
    """Send every queued job of `queue` the broker never received, oldest first; returns the ids sent."""
    pending = select(Job.id).where(
        Job.queue == queue, Job.status == JobStatus.QUEUED, Job.dispatched_at.is_(None)
    )
    return dispatch_all(session, list(session.scalars(pending.order_by(Job.id))), enqueue=enqueue)


def _send(session: Session, job_id: int, enqueue: Enqueue) -> bool:
    stamp = utcnow()
    taken = rows_updated(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.dispatched_at.is_(None))
        .values(dispatched_at=stamp),
    )
    # The queue its device routed it to when it was stored (app/services/routing.py), whoever sends it.
    queue = session.scalar(select(Job.queue).where(Job.id == job_id))
    session.commit()
    if taken != 1 or queue is None:
        return False
    try:
        enqueue(job_id, queue)
    except Exception as exc:
        log.warning(
            "broker unavailable: job %s stays queued and is sent once the broker is back (%s)",
            job_id,
            exc,
            extra={"job_id": job_id},
        )
        session.execute(
            update(Job).where(Job.id == job_id, Job.dispatched_at == stamp).values(dispatched_at=None)
        )
        session.commit()
        raise BrokerRefused(str(exc)) from exc
    return True
