"""The data behind each PNG, gathered and checked here, drawn by `app.services.plots`."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, WrongTask
from app.core.tables import Metric
from app.schemas.analysis import (
    MAX_HORIZON_CHECKPOINTS,
    GradientFlowAt,
    MemoryHorizonParams,
    TimeGateParams,
)
from app.schemas.experiments import BEST_METRICS
from app.services import checkpoints, experiments, gradient_flow, memory_horizon, time_gate
from app.services.jobs import get_job

# What the training loop records (models/train.py), per task: the names a plot may ask for.
RECORDED_METRICS: dict[str, tuple[str, ...]] = {
    # train_length: only runs with a curriculum record it (models/curriculum.py).
    "palindrome": (
        "loss",
        "accuracy",
        "grad_norm",
        "lr",
        "examples_per_s",
        "train_length",
        "val_loss",
        "val_accuracy",
    ),
    "text": (
        "loss",
        "accuracy",
        "grad_norm",
        "lr",
        "examples_per_s",
        "chars_per_s",
        "val_loss",
        "val_accuracy",
    ),
}
CHANCE_ACCURACY = {"palindrome": 0.1}  # ten digits: where an RNN that cannot remember ends up


def _check_metric(task: str, name: str, field: str, extra: tuple[str, ...] = ()) -> None:
    known = (*RECORDED_METRICS[task], *extra)
    if name not in known:
        raise InvalidInput(
            ("query", field), f"{name!r} is not a metric of a {task} job; expected one of {', '.join(known)}"
        )


def experiment_plot(session: Session, experiment_id: int, *, metric: str, x: str, hue: str | None) -> bytes:
    """`metric` against sweep axis `x`, one line per value of axis `hue`: the mean over the other axes
    (seeds, ...) with a band from their min to their max (with 2 seeds a std would be a guess)."""
    from app.services import plots

    experiment = experiments.get_experiment(session, experiment_id)
    axes = list(experiment.sweep)
    for field, axis in (("x", x), ("hue", hue)):
        if axis is not None and axis not in axes:
            raise InvalidInput(
                ("query", field),
                f"{axis!r} is not a sweep axis of experiment {experiment_id}; "
                f"expected one of {', '.join(axes)}",
            )
    if hue == x:
        raise InvalidInput(("query", "hue"), "must be another axis than x")
    _check_metric(experiment.task, metric, "metric", BEST_METRICS)

    groups: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in experiments.results(session, experiment):
        value = getattr(row, metric) if metric in BEST_METRICS else row.final_metrics.get(metric)
        if value is not None:
            groups[row.params[hue] if hue else None][row.params[x]].append(value)
    bands = []
    for hue_value in experiment.sweep[hue] if hue else [None]:
        by_x = groups.get(hue_value, {})
        xs = [v for v in experiment.sweep[x] if by_x.get(v)]
        if xs:
            bands.append(
                plots.Band(
                    label=f"{hue}={hue_value}" if hue else metric,
                    x=xs if all(isinstance(v, int | float) for v in xs) else [str(v) for v in xs],
                    mean=[statistics.fmean(by_x[v]) for v in xs],
                    low=[min(by_x[v]) for v in xs],
                    high=[max(by_x[v]) for v in xs],
                )
            )
    others = [a for a in axes if a not in (x, hue)]
    spread = f"; mean and min-max over {', '.join(others)}" if others else ""
    name = experiment.name or f"experiment {experiment.id}"
    chance = CHANCE_ACCURACY.get(experiment.task) if metric.endswith("accuracy") else None
    figure = plots.sweep_figure(
        bands, title=f"{name}: {metric} against {x}{spread}", x_label=x, y_label=metric, chance=chance
    )
    return plots.to_png(figure)


def job_plot(session: Session, job_id: int, *, metrics: list[str]) -> bytes:
    from app.services import plots

    job = get_job(session, job_id)
    if not metrics:
        raise InvalidInput(("query", "metrics"), "name at least one metric, e.g. metrics=loss,val_loss")
    for name in metrics:
        _check_metric(job.task, name, "metrics")
    curves: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name in metrics}
    query = select(Metric.name, Metric.step, Metric.value).where(
        Metric.job_id == job_id, Metric.name.in_(metrics)
    )
    for name, step, value in session.execute(query.order_by(Metric.step)):
        curves[name][0].append(step)
        curves[name][1].append(value)
    title = f"job {job_id} ({job.task}, {job.model}): {', '.join(metrics)} against step"
    return plots.to_png(plots.curves_figure(curves, title=title))


def gradient_flow_plot(
    session: Session, job_id: int, *, at: GradientFlowAt, checkpoint_id: int | None
) -> bytes:
    """The measured weights, and for a checkpoint also the job's initial weights: before and after."""
    from app.services import plots

    measured = [gradient_flow.gradient_flow(session, job_id, at=at, checkpoint_id=checkpoint_id)]
    if at == "checkpoint":
        measured.append(gradient_flow.gradient_flow(session, job_id, at="init", checkpoint_id=None))
    curves = {}
    for flow in measured:
        weights = (
            "initial weights" if flow.at == "init" else f"checkpoint {flow.checkpoint_id}, step {flow.step}"
        )
        curves[f"{flow.model}, {weights}"] = (flow.t, flow.grad_norm)
    flow = measured[0]
    title = (
        f"job {job_id}: gradient flow through time, {flow.model}, input_length {flow.input_length}, "
        f"batch {flow.batch_size}"
    )
    return plots.to_png(plots.gradient_flow_figure(curves, title=title))


def memory_horizon_plot(
    session: Session,
    job_id: int,
    *,
    params: MemoryHorizonParams,
    checkpoint_ids: list[int] | None,
    all_checkpoints: bool,
) -> bytes:
    """The job's memory horizon at the checkpoints named, at up to MAX_HORIZON_CHECKPOINTS of its kept
    ones (`all_checkpoints`), or at its latest: how far back the model reads, as it trained."""
    from app.services import plots

    job = get_job(session, job_id)
    memory_horizon.check_text_job(job)
    if all_checkpoints and checkpoint_ids:
        raise InvalidInput(
            ("query", "checkpoints"), "checkpoints=all measures every kept one; omit checkpoint_id"
        )
    chosen: list[int | None] = [*checkpoint_ids] if checkpoint_ids else [None]
    if all_checkpoints:
        kept = checkpoints.list_for_job(session, job_id)
        chosen = [c.id for c in checkpoints.spread(kept, MAX_HORIZON_CHECKPOINTS)] or [None]
    curves = {}
    for checkpoint_id in dict.fromkeys(chosen):  # a checkpoint named twice is drawn once
        horizon = memory_horizon.memory_horizon(session, job_id, params=params, checkpoint_id=checkpoint_id)
        curves[f"checkpoint {horizon.checkpoint_id}, step {horizon.step}"] = (horizon.k, horizon.mean_norm)
    text = (
        "the validation split" if params.text is None else f"a given text of {horizon.text_length} characters"
    )
    title = f"job {job_id}: memory horizon of {job.model} on {text}, mean over {horizon.windows} positions"
    return plots.to_png(plots.memory_horizon_figure(curves, title=title))


def experiment_memory_horizon_plot(
    session: Session, experiment_id: int, *, params: MemoryHorizonParams
) -> bytes:
    """The latest checkpoint of each of the experiment's text jobs (the first
    MAX_HORIZON_CHECKPOINTS that have one), one line each, labelled by its sweep values."""
    from app.services import plots

    experiment = experiments.get_experiment(session, experiment_id)
    if experiment.task != "text":
        raise WrongTask(
            f"experiment {experiment_id} is a {experiment.task} experiment: the memory horizon is measured "
            "on text models; for palindrome models see GET /jobs/{id}/gradient-flow.png of its jobs"
        )
    rows = experiments.experiment_jobs(session, experiment_id)
    labels = {
        job.id: ", ".join(f"{axis}={value}" for axis, value in params.items())
        for job, params in zip(rows, experiments.grid_params(experiment, rows), strict=True)
    }
    measured = [job for job in rows if job.latest_checkpoint_id is not None]
    shown = measured[:MAX_HORIZON_CHECKPOINTS]
    curves = {}
    for job in shown:
        horizon = memory_horizon.memory_horizon(session, job.id, params=params, checkpoint_id=None)
        values = labels[job.id]
        curves[f"{values} (job {job.id}, step {horizon.step})"] = (horizon.k, horizon.mean_norm)
    text = "each job's validation split" if params.text is None else "a given text"
    some = f"the first {len(shown)} of {len(measured)} jobs" if len(shown) < len(measured) else "its jobs"
    name = experiment.name or f"experiment {experiment.id}"
    title = f"{name}: memory horizon of {some} (latest checkpoints) on {text}"
    return plots.to_png(plots.memory_horizon_figure(curves, title=title))


def time_gate_plot(params: TimeGateParams) -> bytes:
    from app.services import plots

    curve = time_gate.time_gate_curve(params)
    title = (
        f"Phased LSTM time gate: tau={params.tau:g}, shift={params.shift:g}, "
        f"r_on={params.r_on:g}, alpha={params.alpha:g}"
    )
    return plots.to_png(plots.time_gate_figure(curve.t, curve.phi, curve.k, r_on=params.r_on, title=title))
