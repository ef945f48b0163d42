"""Training jobs: queue, list, inspect, cancel; their metrics, samples and checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from app.api.deps import EnqueueDep, SessionDep, SettingsDep
from app.api.openapi import error_responses
from app.core.bounds import DbId, DbOffset, DbStep
from app.core.job_status import JobStatus
from app.schemas.resources import CheckpointOut, JobDetail, JobOut, JobPage, MetricPage, SampleOut
from app.schemas.training import TrainRequest
from app.services import admission, checkpoints, jobs, routing

router = APIRouter(tags=["jobs"])


@router.post("/train", status_code=202, response_model=JobOut, responses=error_responses(404, 409, 503))
def create_training_job(
    request: Annotated[TrainRequest, Body()],
    session: SessionDep,
    settings: SettingsDep,
    enqueue: EnqueueDep,
    response: Response,
) -> JobOut:
    """Queue a training job (task `palindrome` or `text`); watch it at the `Location` URL.

    422 when its estimated peak memory is over the worker budget; 429 when the queue is full."""
    job = jobs.create_job(
        session,
        request=request,
        enqueue=enqueue,
        queues=routing.Queues.of(settings),
        memory_budget=admission.worker_memory_budget(settings),
        max_queued_jobs=settings.max_queued_jobs,
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    return jobs.job_out(job)


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    status: JobStatus | None = None,
    task: Annotated[str | None, Query(pattern="^(palindrome|text)$")] = None,
    experiment_id: DbId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: DbOffset = 0,
) -> JobPage:
    return jobs.list_jobs(
        session, status=status, task=task, limit=limit, offset=offset, experiment_id=experiment_id
    )


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=error_responses(404))
def get_job(job_id: DbId, session: SessionDep, settings: SettingsDep) -> JobDetail:
    """The job, its attempts (worker, device, outcome), and why it waits if no live worker takes it."""
    return jobs.job_detail(session, jobs.get_job(session, job_id), lease_seconds=settings.lease_seconds)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=error_responses(404, 409))
def cancel_job(job_id: DbId, session: SessionDep) -> JobOut:
    """Queued: cancelled at once. Running: stops at its next step after a final checkpoint."""
    return jobs.job_out(jobs.cancel_job(session, job_id))


@router.get("/jobs/{job_id}/metrics", response_model=MetricPage, responses=error_responses(404))
def job_metrics(
    job_id: DbId,
    session: SessionDep,
    name: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_]{1,40}$", description="e.g. val_loss")] = None,
    after_step: DbStep = -1,
    limit: Annotated[int, Query(ge=10, le=10_000)] = 1000,
) -> MetricPage:
    return checkpoints.metric_history(session, job_id, name=name, after_step=after_step, limit=limit)


@router.get("/jobs/{job_id}/samples", response_model=list[SampleOut], responses=error_responses(404))
def job_samples(job_id: DbId, session: SessionDep) -> list[SampleOut]:
    return [SampleOut.model_validate(s) for s in checkpoints.samples_for_job(session, job_id)]


@router.get("/jobs/{job_id}/checkpoints", response_model=list[CheckpointOut], responses=error_responses(404))
def job_checkpoints(job_id: DbId, session: SessionDep) -> list[CheckpointOut]:
    return [CheckpointOut.model_validate(c) for c in checkpoints.list_for_job(session, job_id)]
