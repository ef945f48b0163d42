"""Looking into a job and a model: metric curves and exports, gradient flow, the memory horizon, the
learning timeline, the Phased LSTM time gate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.deps import SessionDep
from app.api.media import PNG, attachment, media
from app.api.openapi import error_responses
from app.core.bounds import DbId
from app.schemas.analysis import (
    MAX_HORIZON_CHECKPOINTS,
    GradientFlowAt,
    GradientFlowOut,
    MemoryHorizonOut,
    MemoryHorizonParams,
    TimeGateOut,
    TimeGateParams,
)
from app.schemas.timeline import TimelineOut, TimelineParams
from app.services import exports, figures, gradient_flow, memory_horizon, time_gate, timeline

router = APIRouter(tags=["analysis"])

AT = Query(description="checkpoint: trained weights; init: the job's untrained starting weights")
CHECKPOINT = Query(ge=1, description="one of this job's checkpoints; default its latest")


@router.get("/jobs/{job_id}/plot.png", response_class=Response, responses=error_responses(404, 409) | PNG)
def job_plot(
    job_id: DbId,
    session: SessionDep,
    metrics: Annotated[str, Query(description="comma-separated metric names")] = "loss,val_loss",
) -> Response:
    names = [name.strip() for name in metrics.split(",") if name.strip()]
    return Response(figures.job_plot(session, job_id, metrics=names), media_type="image/png")


@router.get(
    "/jobs/{job_id}/metrics.csv",
    response_class=Response,
    responses=error_responses(404, 409) | media("text/csv", "columns step, name, value, time"),
)
def job_metrics_csv(job_id: DbId, session: SessionDep) -> Response:
    return attachment(exports.metrics_csv(session, job_id), "text/csv", f"job-{job_id}-metrics.csv")


@router.get(
    "/jobs/{job_id}/tensorboard.tar.gz",
    response_class=Response,
    responses=error_responses(404, 409) | media("application/gzip", "job-<id>/events.out.tfevents.*"),
)
def job_tensorboard(job_id: DbId, session: SessionDep) -> Response:
    """The job's metrics as TensorBoard scalars: unpack, then `tensorboard --logdir .`."""
    archive = exports.tensorboard_archive(session, job_id)
    return attachment(archive, "application/gzip", f"job-{job_id}-tensorboard.tar.gz")


@router.get(
    "/jobs/{job_id}/gradient-flow", response_model=GradientFlowOut, responses=error_responses(404, 409)
)
def job_gradient_flow(
    job_id: DbId,
    session: SessionDep,
    at: Annotated[GradientFlowAt, AT] = "checkpoint",
    checkpoint_id: Annotated[DbId | None, CHECKPOINT] = None,
) -> GradientFlowOut:
    """||dL/dh(t)|| of a palindrome model on a fixed batch of palindromes of the job's length."""
    return gradient_flow.gradient_flow(session, job_id, at=at, checkpoint_id=checkpoint_id)


@router.get(
    "/jobs/{job_id}/gradient-flow.png", response_class=Response, responses=error_responses(404, 409) | PNG
)
def job_gradient_flow_png(
    job_id: DbId,
    session: SessionDep,
    at: Annotated[GradientFlowAt, AT] = "checkpoint",
    checkpoint_id: Annotated[DbId | None, CHECKPOINT] = None,
) -> Response:
    image = figures.gradient_flow_plot(session, job_id, at=at, checkpoint_id=checkpoint_id)
    return Response(image, media_type="image/png")


@router.get(
    "/jobs/{job_id}/memory-horizon",
    response_model=MemoryHorizonOut,
    responses=error_responses(404, 409, 422),
)
def job_memory_horizon(
    job_id: DbId,
    session: SessionDep,
    params: Annotated[MemoryHorizonParams, Query()],
    checkpoint_id: Annotated[DbId | None, CHECKPOINT] = None,
) -> MemoryHorizonOut:
    """||d log p(next char) / d embedding(k characters back)|| of a text model against k, averaged over
    positions of the job's validation text (or `text`): how far back its predictions read."""
    return memory_horizon.memory_horizon(session, job_id, params=params, checkpoint_id=checkpoint_id)


@router.get(
    "/jobs/{job_id}/memory-horizon.png",
    response_class=Response,
    responses=error_responses(404, 409, 422) | PNG,
)
def job_memory_horizon_png(
    job_id: DbId,
    session: SessionDep,
    params: Annotated[MemoryHorizonParams, Query()],
    checkpoint_id: Annotated[
        list[DbId] | None,
        Query(
            max_length=MAX_HORIZON_CHECKPOINTS,
            description=f"repeat for several curves (at most {MAX_HORIZON_CHECKPOINTS}); default the latest",
        ),
    ] = None,
    checkpoints: Annotated[
        Literal["all"] | None,
        Query(description=f"all: up to {MAX_HORIZON_CHECKPOINTS} of the kept checkpoints, evenly spread"),
    ] = None,
) -> Response:
    image = figures.memory_horizon_plot(
        session, job_id, params=params, checkpoint_ids=checkpoint_id, all_checkpoints=checkpoints == "all"
    )
    return Response(image, media_type="image/png")


@router.get("/jobs/{job_id}/timeline", response_model=TimelineOut, responses=error_responses(404, 409, 422))
def job_timeline(
    job_id: DbId, session: SessionDep, params: Annotated[TimelineParams, Query()]
) -> TimelineOut:
    """The same prompt and random_seed sampled from each kept checkpoint, beside its step, validation
    bits per character and training accuracy: what the model could write as it learned."""
    return timeline.timeline(session, job_id, params=params)


@router.get("/phased-lstm/time-gate", response_model=TimeGateOut)
def phased_lstm_time_gate(params: Annotated[TimeGateParams, Query()]) -> TimeGateOut:
    """k(t) and phi(t) of one Phased LSTM unit, from `models.phased_lstm`."""
    return time_gate.time_gate_curve(params)


@router.get("/phased-lstm/time-gate.png", response_class=Response, responses=error_responses(404, 409) | PNG)
def phased_lstm_time_gate_png(params: Annotated[TimeGateParams, Query()]) -> Response:
    return Response(figures.time_gate_plot(params), media_type="image/png")
