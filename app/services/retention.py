"""Which checkpoints a job keeps: its best one and its latest few; older ones go with their bytes.

Called inside the transaction that records a new checkpoint, so the job's pointers and the rows they
point at always agree. A checkpoint another job waits to resume from (`resume_from` of a queued or
running job) is kept too, so deleting never breaks a job that was accepted; so is one that a named
model's version points at (app/services/model_registry.py), so deleting never breaks a name, and one
that a session holds (POST /sessions keeps its checkpoint's id), so training on never breaks a session
someone is reading from. A session's row goes when it expires, and its checkpoint with the next pruning.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.job_status import JobStatus
from app.core.tables import Checkpoint, Job, ModelSession, ModelVersion


def prune_checkpoints(session: Session, job_id: int, *, keep_last: int) -> list[int]:
    """Delete the job's checkpoints that are not best, among the `keep_last` latest, awaited, named or
    held by a session."""
    latest = select(Checkpoint.id).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc())
    kept = set(session.scalars(latest.limit(keep_last)))
    awaited = select(Job.resume_from).where(
        Job.resume_from.is_not(None), Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))
    )
    doomed = list(
        session.scalars(
            select(Checkpoint.id).where(
                Checkpoint.job_id == job_id,
                Checkpoint.is_best.is_(False),
                Checkpoint.id.not_in(kept),
                Checkpoint.id.not_in(awaited),
                Checkpoint.id.not_in(select(ModelVersion.checkpoint_id)),
                Checkpoint.id.not_in(select(ModelSession.checkpoint_id)),
            )
        )
    )
    if doomed:
        session.execute(delete(Checkpoint).where(Checkpoint.id.in_(doomed)))
    return doomed
