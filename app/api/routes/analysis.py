"""Looking into a job and a model: metric curves and exports, gradient flow, the Phased LSTM time gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import SessionDep
from app.api.media import PNG, attachment, media
from app.api.openapi import error_responses
from app.core.bounds import DbId
from app.schemas.analysis import GradientFlowAt, GradientFlowOut, TimeGateOut, TimeGateParams
from app.services import exports, figures, gradient_flow, time_gate

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


@router.get("/phased-lstm/time-gate", response_model=TimeGateOut)
def phased_lstm_time_gate(params: Annotated[TimeGateParams, Query()]) -> TimeGateOut:
    """k(t) and phi(t) of one Phased LSTM unit, from `models.phased_lstm`."""
    return time_gate.time_gate_curve(params)


@router.get("/phased-lstm/time-gate.png", response_class=Response, responses=error_responses(404, 409) | PNG)
def phased_lstm_time_gate_png(params: Annotated[TimeGateParams, Query()]) -> Response:
    return Response(figures.time_gate_plot(params), media_type="image/png")
