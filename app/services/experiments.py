"""Experiments: a sweep stored with all its jobs in one transaction, then queued; status and results."""

from __future__ import annotations

import contextlib
import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import ExperimentNotCancellable, ExperimentNotFound, JobNotCancellable
from app.core.job_status import FINISHED, JobStatus
from app.core.queue import Enqueue
from app.core.tables import Experiment, Job, Metric
from app.schemas.experiments import (
    VARIANT_AXIS,
    ExperimentOut,
    ExperimentPage,
    ExperimentRequest,
    ExperimentRow,
    ExperimentStatus,
    ExperimentSummary,
)
from app.schemas.training import SERVICE_FIELDS
from app.services import admission, jobs, routing, sweeps


def create_experiment(
    session: Session,
    *,
    request: ExperimentRequest,
    enqueue: Enqueue,
    queues: routing.Queues,
    max_jobs: int,
    memory_budget: int,
    max_queued_jobs: int,
) -> Experiment:
    """Validate the whole grid, store the experiment and every job at once, then queue the jobs."""
    grid = sweeps.expand(request, max_jobs=max_jobs)
    admission.check_queue_room(session, limit=max_queued_jobs, adding=len(grid.points))
    # The same checks and rows as POST /train, before anything is added: a bad reference stores nothing.
    route = routing.router(session, queues)
    rows = [
        jobs.new_job(session, request=point, queue=route(point.device), memory_budget=memory_budget)
        for point in grid.points
    ]
    experiment = Experiment(
        name=request.name, task=request.task, base_config=grid.base, sweep=grid.sweep, variants=grid.variants
    )
    session.add(experiment)
    session.flush()  # the experiment's id, for its jobs, inside the same transaction
    for row in rows:
        row.experiment_id = experiment.id
    session.add_all(rows)
    session.commit()
    jobs.enqueue_jobs(session, [row.id for row in rows], enqueue=enqueue)
    return experiment


def get_experiment(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise ExperimentNotFound(experiment_id)
    return experiment


def experiment_status(counts: dict[str, int]) -> ExperimentStatus:
    """The experiment's status from its jobs' (see ExperimentStatus for the rules)."""
    total = sum(counts.values())
    unfinished = counts["queued"] + counts["running"]
    if counts["queued"] == total:
        return "queued"
    if unfinished:
        return "running"
    if counts["succeeded"] == total:
        return "succeeded"
    if counts["succeeded"]:
        return "partial"
    if counts["failed"]:
        return "failed"
    return "cancelled"


def _counts(session: Session, experiment_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    query = (
        select(Job.experiment_id, Job.status, func.count())
        .where(Job.experiment_id.in_(experiment_ids))
        .group_by(Job.experiment_id, Job.status)
    )
    counts: dict[int, dict[str, int]] = {i: {s.value: 0 for s in JobStatus} for i in experiment_ids}
    for experiment_id, status, n in session.execute(query):
        assert experiment_id is not None  # the IN clause leaves out jobs of no experiment
        counts[experiment_id][status] = n
    return counts


def _summary(experiment: Experiment, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "name": experiment.name,
        "task": experiment.task,
        "status": experiment_status(counts),
        "jobs": sum(counts.values()),
        "counts": counts,
        "sweep": experiment.sweep,
        "variants": experiment.variants,
        "created_at": experiment.created_at,
    }


def list_experiments(session: Session, *, limit: int, offset: int) -> ExperimentPage:
    total = session.scalar(select(func.count()).select_from(Experiment)) or 0
    page = session.scalars(
        select(Experiment).order_by(Experiment.id.desc()).limit(limit).offset(offset)
    ).all()
    counts = _counts(session, [e.id for e in page])
    items = [ExperimentSummary.model_validate(_summary(e, counts[e.id])) for e in page]
    return ExperimentPage(items=items, total=total, limit=limit, offset=offset)


def experiment_jobs(session: Session, experiment_id: int) -> Sequence[Job]:
    return session.scalars(select(Job).where(Job.experiment_id == experiment_id).order_by(Job.id)).all()


def results(session: Session, experiment: Experiment) -> list[ExperimentRow]:
    """One row per job, in grid order: its axis values, status, latest metrics and best validation."""
    rows = experiment_jobs(session, experiment.id)
    best = _best_validation(session, [job.id for job in rows])
    return [
        ExperimentRow(
            params=params,
            job_id=job.id,
            status=job.status,
            step=job.step,
            final_metrics=job.latest_metrics,
            best_val_loss=best[job.id].get("val_loss"),
            best_val_accuracy=best[job.id].get("val_accuracy"),
        )
        for job, params in zip(rows, grid_params(experiment, rows), strict=True)
    ]


def grid_params(experiment: Experiment, rows: Sequence[Job]) -> list[dict[str, Any]]:
    """Each job's value on every axis; `rows` are all the experiment's jobs, in id (= grid) order."""
    # A job's variant is not in its config (an empty variant is the base itself): the jobs were
    # stored in grid order, the variant varying slowest, so the job's place says which it is.
    names = experiment.sweep.get(VARIANT_AXIS, []) if experiment.variants else []
    per_variant = max(1, len(rows) // max(1, len(names)))
    axes = [axis for axis in experiment.sweep if axis != VARIANT_AXIS or not names]
    return [
        ({VARIANT_AXIS: names[index // per_variant]} if names else {})
        | {axis: axis_value(job, axis) for axis in axes}
        for index, job in enumerate(rows)
    ]


def axis_value(job: Job, axis: str) -> Any:
    # Service fields (dataset_id, resume_from) are columns of the job, not part of its training config.
    return getattr(job, axis) if axis in SERVICE_FIELDS else job.config.get(axis)


def _best_validation(session: Session, job_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """Lowest val_loss and highest val_accuracy of each job, in one query."""
    query = (
        select(Metric.job_id, Metric.name, func.min(Metric.value), func.max(Metric.value))
        .where(Metric.job_id.in_(job_ids), Metric.name.in_(("val_loss", "val_accuracy")))
        .group_by(Metric.job_id, Metric.name)
    )
    best: dict[int, dict[str, float]] = defaultdict(dict)
    for job_id, name, lowest, highest in session.execute(query):
        best[job_id][name] = lowest if name == "val_loss" else highest
    return best


def experiment_out(session: Session, experiment: Experiment) -> ExperimentOut:
    counts = _counts(session, [experiment.id])[experiment.id]
    return ExperimentOut.model_validate(
        _summary(experiment, counts)
        | {"base_config": experiment.base_config, "results": results(session, experiment)}
    )


def results_csv(axes: Iterable[str], rows: Sequence[ExperimentRow]) -> str:
    """The results table flattened: axes, job, status, step, best_*, then final_<metric> (sorted)."""
    axes = list(axes)
    metric_names = sorted({name for row in rows for name in row.final_metrics})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = [*axes, "job_id", "status", "step", "best_val_loss", "best_val_accuracy"]
    writer.writerow(header + [f"final_{name}" for name in metric_names])
    for row in rows:
        writer.writerow(
            [row.params[axis] for axis in axes]
            + [row.job_id, row.status, row.step, _cell(row.best_val_loss), _cell(row.best_val_accuracy)]
            + [_cell(row.final_metrics.get(name)) for name in metric_names]
        )
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def cancel_experiment(session: Session, experiment_id: int) -> Experiment:
    """Cancel every queued or running job through the job cancel (running ones stop with a checkpoint)."""
    experiment = get_experiment(session, experiment_id)
    unfinished = session.scalars(
        select(Job.id).where(Job.experiment_id == experiment_id, Job.status.not_in(FINISHED))
    ).all()
    if not unfinished:
        raise ExperimentNotCancellable(experiment_id)
    for job_id in unfinished:
        # One that finished between the query and the cancel has nothing left to stop.
        with contextlib.suppress(JobNotCancellable):
            jobs.cancel_job(session, job_id)
    return experiment
