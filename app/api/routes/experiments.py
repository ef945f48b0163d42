"""Experiments: a sweep of training jobs, its results table (JSON, CSV) and its figure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from app.api.deps import EnqueueDep, SessionDep, SettingsDep
from app.api.media import PNG, attachment, media
from app.api.openapi import error_responses
from app.core.bounds import DbId, DbOffset
from app.schemas.analysis import MemoryHorizonParams
from app.schemas.experiments import ExperimentOut, ExperimentPage, ExperimentRequest
from app.services import admission, experiments, figures, routing

router = APIRouter(tags=["experiments"])

CSV = media("text/csv", "the results table, a header row first")
EXAMPLE = {
    "task": "palindrome",
    "train_steps": 1500,
    "sweep": {"model": ["rnn", "lstm", "phased_lstm"], "input_length": [5, 10, 20, 30], "seed": [0, 1]},
}


@router.post(
    "/experiments", status_code=202, response_model=ExperimentOut, responses=error_responses(404, 409, 503)
)
def create_experiment(
    request: Annotated[ExperimentRequest, Body(openapi_examples={"course": {"value": EXAMPLE}})],
    session: SessionDep,
    enqueue: EnqueueDep,
    settings: SettingsDep,
    response: Response,
) -> ExperimentOut:
    """Queue one job per point of the sweep's grid; the whole grid is validated before any is stored."""
    experiment = experiments.create_experiment(
        session,
        request=request,
        enqueue=enqueue,
        queues=routing.Queues.of(settings),
        max_jobs=settings.max_experiment_jobs,
        memory_budget=admission.worker_memory_budget(settings),
        max_queued_jobs=settings.max_queued_jobs,
    )
    response.headers["Location"] = f"/experiments/{experiment.id}"
    return experiments.experiment_out(session, experiment)


@router.get("/experiments", response_model=ExperimentPage)
def list_experiments(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: DbOffset = 0,
) -> ExperimentPage:
    return experiments.list_experiments(session, limit=limit, offset=offset)


@router.get("/experiments/{experiment_id}", response_model=ExperimentOut, responses=error_responses(404))
def get_experiment(experiment_id: DbId, session: SessionDep) -> ExperimentOut:
    return experiments.experiment_out(session, experiments.get_experiment(session, experiment_id))


@router.get(
    "/experiments/{experiment_id}/results.csv",
    response_class=Response,
    responses=error_responses(404, 409) | CSV,
)
def experiment_results_csv(experiment_id: DbId, session: SessionDep) -> Response:
    experiment = experiments.get_experiment(session, experiment_id)
    table = experiments.results_csv(experiment.sweep, experiments.results(session, experiment))
    return attachment(table, "text/csv", f"experiment-{experiment_id}.csv")


@router.get(
    "/experiments/{experiment_id}/plot.png",
    response_class=Response,
    responses=error_responses(404, 409) | PNG,
)
def experiment_plot(
    experiment_id: DbId,
    session: SessionDep,
    x: Annotated[str, Query(description="the sweep axis on the x axis, e.g. input_length")],
    metric: Annotated[str, Query(description="a final metric, or best_val_loss / best_val_accuracy")] = (
        "val_accuracy"
    ),
    hue: Annotated[str | None, Query(description="the sweep axis with one line per value")] = None,
) -> Response:
    """Mean over the axes that are neither x nor hue (e.g. seeds), shaded from their min to their max."""
    image = figures.experiment_plot(session, experiment_id, metric=metric, x=x, hue=hue)
    return Response(image, media_type="image/png")


@router.get(
    "/experiments/{experiment_id}/memory-horizon.png",
    response_class=Response,
    responses=error_responses(404, 409, 422) | PNG,
)
def experiment_memory_horizon(
    experiment_id: DbId, session: SessionDep, params: Annotated[MemoryHorizonParams, Query()]
) -> Response:
    """The memory horizon of each text job's latest checkpoint, one line per job: e.g. an LSTM with a
    long training window against one trained on a short one, on the same text."""
    image = figures.experiment_memory_horizon_plot(session, experiment_id, params=params)
    return Response(image, media_type="image/png")


@router.post(
    "/experiments/{experiment_id}/cancel", response_model=ExperimentOut, responses=error_responses(404, 409)
)
def cancel_experiment(experiment_id: DbId, session: SessionDep) -> ExperimentOut:
    """Cancel every queued or running job (running ones stop at their next step with a checkpoint)."""
    return experiments.experiment_out(session, experiments.cancel_experiment(session, experiment_id))
