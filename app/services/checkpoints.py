"""Checkpoints (bytes in the database), metrics and samples: the read side used by the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from app.core.errors import CheckpointNotFound, InvalidInput, JobHasNoCheckpoint
from app.core.tables import Checkpoint, Job, Metric, Sample
from app.schemas.resources import MetricPage, MetricPoint
from app.services import model_registry
from app.services.jobs import get_job

T = TypeVar("T")


def get_checkpoint(session: Session, checkpoint_id: int, *, with_data: bool = False) -> Checkpoint:
    options = [] if with_data else [defer(Checkpoint.data)]
    checkpoint = session.get(Checkpoint, checkpoint_id, options=options)
    if checkpoint is None:
        raise CheckpointNotFound(checkpoint_id)
    return checkpoint


def of_job(
    session: Session, job: Job, checkpoint_id: int | None, *, field: str = "checkpoint_id"
) -> Checkpoint:
    """One of the job's checkpoints, with its bytes: the one asked for (which must be the job's), else
    its latest."""
    checkpoint_id = checkpoint_id or job.latest_checkpoint_id
    if checkpoint_id is None:
        raise JobHasNoCheckpoint(job.id)
    checkpoint = get_checkpoint(session, checkpoint_id, with_data=True)
    if checkpoint.job_id != job.id:
        raise InvalidInput(("query", field), f"checkpoint {checkpoint_id} belongs to job {checkpoint.job_id}")
    return checkpoint


def resolve(
    session: Session,
    *,
    checkpoint_id: int | None,
    job_id: int | None,
    model: str | None = None,
    source: str = "body",
) -> int:
    """The checkpoint id for a (checkpoint_id | job_id | model) reference: a job means its latest
    checkpoint, a named model what its version or alias points at now (`source` locates errors)."""
    if checkpoint_id is not None:
        return get_checkpoint(session, checkpoint_id).id
    if model is not None:
        return model_registry.resolve(session, model, loc=(source, "model"))
    assert job_id is not None
    job = get_job(session, job_id)
    if job.latest_checkpoint_id is None:
        raise JobHasNoCheckpoint(job_id)
    return job.latest_checkpoint_id


def list_for_job(session: Session, job_id: int) -> Sequence[Checkpoint]:
    get_job(session, job_id)
    query = select(Checkpoint).options(defer(Checkpoint.data)).where(Checkpoint.job_id == job_id)
    return session.scalars(query.order_by(Checkpoint.step)).all()


def spread(kept: Sequence[T], most: int) -> list[T]:
    """At most `most` of `kept` (in step order), evenly spaced, the first and the last included: a
    figure or a table over a long run shows its whole course, not its first few checkpoints."""
    if len(kept) <= most:
        return list(kept)
    if most == 1:
        return [kept[-1]]
    return [kept[round(i * (len(kept) - 1) / (most - 1))] for i in range(most)]


def metric_history(
    session: Session, job_id: int, *, name: str | None, after_step: int, limit: int
) -> MetricPage:
    get_job(session, job_id)
    query = select(Metric).where(Metric.job_id == job_id, Metric.step > after_step)
    if name is not None:
        query = query.where(Metric.name == name)
    rows = list(session.scalars(query.order_by(Metric.step, Metric.name).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_after: int | None = None
    if more and rows:
        # Drop the last step if it may be cut short: the next page starts with all of it.
        whole = [r for r in rows if r.step < rows[-1].step]
        rows = whole or rows
        next_after = rows[-1].step
    return MetricPage(items=[MetricPoint.model_validate(r) for r in rows], next_after_step=next_after)


def samples_for_job(session: Session, job_id: int) -> Sequence[Sample]:
    get_job(session, job_id)
    return session.scalars(select(Sample).where(Sample.job_id == job_id).order_by(Sample.step)).all()
