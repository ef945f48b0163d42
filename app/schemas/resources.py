"""What the API answers about its resources: jobs, metrics, samples, checkpoints, datasets, health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.job_status import JobStatus


class ORM(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JobOut(ORM):
    id: int
    task: str
    model: str
    status: JobStatus
    config: dict[str, Any]
    dataset_id: int | None
    experiment_id: int | None
    resume_from: int | None
    step: int
    total_steps: int
    progress: float = Field(description="step / total_steps")
    steps_per_second: float | None
    eta_seconds: float | None = Field(description="from the recent steps/s; null when not running")
    latest_metrics: dict[str, float]
    best_val_loss: float | None
    best_checkpoint_id: int | None
    latest_checkpoint_id: int | None
    cancel_requested: bool
    error: str | None
    attempts: int
    queue: str = Field(description="the queue its device routed it to (the CPU or the GPU workers')")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class AttemptOut(ORM):
    number: int
    worker: str = Field(description="the worker that ran it, as it names itself: hostname:pid")
    device: str = Field(description="the device that worker declared: cpu, cuda:0, ...")
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None = Field(
        description="succeeded | failed | cancelled | requeued (its worker shut down) | "
        "worker lost (its worker stopped beating); null while it runs"
    )


class JobDetail(JobOut):
    """`GET /jobs/{id}`: the job, every attempt at it, and why it waits if nobody will take it."""

    attempt_history: list[AttemptOut]
    waiting_reason: str | None = Field(
        description="set while the job is queued on a queue no live worker consumes; null otherwise"
    )


class WorkerOut(ORM):
    name: str = Field(description="hostname:pid, as the worker names itself")
    hostname: str
    pid: int
    queue: str
    device: str = Field(description="as the worker declares it: cpu, cuda:0, ...")
    started_at: datetime
    heartbeat_at: datetime
    alive: bool = Field(description="its last heartbeat is within the lease (RNNLAB_LEASE_SECONDS)")
    current_job_id: int | None
    jobs_finished: int = Field(description="jobs it brought to succeeded, failed or cancelled")


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class MetricPoint(ORM):
    step: int
    name: str
    value: float
    timestamp: datetime = Field(validation_alias="created_at")


class MetricPage(BaseModel):
    items: list[MetricPoint]
    next_after_step: int | None = Field(description="pass as after_step for the next page; null at the end")


class SampleOut(ORM):
    step: int
    temperature: float
    text: str
    created_at: datetime


class CheckpointOut(ORM):
    id: int
    job_id: int
    step: int
    task: str
    model_type: str
    # Serialised as "model_config", the name HTTP clients already read.
    architecture: dict[str, Any] = Field(serialization_alias="model_config")
    size_bytes: int
    is_best: bool
    is_final: bool
    val_loss: float | None
    created_at: datetime


class DatasetSummary(ORM):
    id: int
    name: str
    characters: int
    vocab_size: int
    size_bytes: int
    builtin: bool
    created_at: datetime


class DatasetOut(DatasetSummary):
    preview: str


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
