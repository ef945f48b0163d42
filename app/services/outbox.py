"""The database is the source of truth for queued work: a job is stored first, its task sent after.

A queued job with `dispatched_at` NULL is one the broker has not received (it was down when the job
was posted, or the job was given back after its worker died). Whoever sends it first stamps the
column with a conditional UPDATE and only then publishes, so the API and several sweeping workers
racing for one job send it once; a publish that fails clears the stamp again for the next sweep.
A task delivered twice anyway (a broker redelivering after a restart) is harmless: `runs.claim`
lets one delivery run the job and the others skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.job_status import JobStatus
from app.queue import Enqueue
from app.services.transitions import rows_updated
from app.tables import Job, utcnow

log = logging.getLogger(__name__)


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
    session.commit()
    if taken != 1:
        return False
    try:
        enqueue(job_id)
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
