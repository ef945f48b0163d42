"""Which queue a job goes to, by its config's `device`, and whether anything consumes that queue.

    cuda -> the GPU workers' queue        cpu -> the CPU workers' queue
    auto -> the GPU queue when a live worker consumes it (one whose heartbeat is within the lease),
            else the CPU queue

The choice is made once, when the job is stored (its row's `queue`); the outbox and every later
resend use that row, so a job never changes hardware halfway. A queue with no live worker still
takes jobs: they wait, and `GET /jobs/{id}` says so (`waiting_reason`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.core.job_status import JobStatus
from app.core.settings import Settings
from app.core.tables import Job
from app.services import workers

# A job's device -> its queue.
Route = Callable[[str], str]


@dataclass(frozen=True)
class Queues:
    cpu: str
    gpu: str
    lease_seconds: float  # a worker that beat within it is live

    @classmethod
    def of(cls, settings: Settings) -> Queues:
        return cls(
            cpu=settings.queue_of("cpu"), gpu=settings.queue_of("gpu"), lease_seconds=settings.lease_seconds
        )


def router(session: Session, queues: Queues) -> Route:
    """A `Route` that sees the live workers as they are now (read once: an experiment's points agree)."""
    live = workers.live_workers(session, lease_seconds=queues.lease_seconds)
    auto = queues.gpu if live.get(queues.gpu, 0) > 0 else queues.cpu

    def route(device: str) -> str:
        if device == "cuda":
            return queues.gpu
        if device == "cpu":
            return queues.cpu
        return auto

    return route


def waiting_reason(session: Session, job: Job, *, lease_seconds: float) -> str | None:
    """Why a queued job is not running, when the reason is that no live worker consumes its queue."""
    if job.status != JobStatus.QUEUED:
        return None
    if workers.live_workers(session, lease_seconds=lease_seconds).get(job.queue, 0) > 0:
        return None
    return f"waiting on queue {job.queue!r}: no live worker consumes it"
