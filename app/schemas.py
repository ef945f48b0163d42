"""Request and response bodies. Training requests ARE the training configs plus service fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.bounds import DbId
from app.job_status import JobStatus
from models.config import MIN_TEMPERATURE, PalindromeConfig, TextConfig


class PalindromeTrainRequest(PalindromeConfig):
    """A palindrome job: the training config, optionally resumed from a checkpoint."""

    resume_from: DbId | None = Field(None, description="checkpoint id to continue from")


class TextTrainRequest(TextConfig):
    """A text job: the training config, the corpus, optionally resumed from a checkpoint."""

    dataset_id: DbId | None = Field(None, description="dataset to train on; the built-in one if omitted")
    resume_from: DbId | None = Field(None, description="checkpoint id to continue from")


TrainRequest = Annotated[PalindromeTrainRequest | TextTrainRequest, Field(discriminator="task")]


# What a train request adds to its training config: stored in the job row's own columns, never in the
# config the loop runs (derived, so a new service field cannot leak into stored configs).
SERVICE_FIELDS = {
    name
    for request, config in ((PalindromeTrainRequest, PalindromeConfig), (TextTrainRequest, TextConfig))
    for name in set(request.model_fields) - set(config.model_fields)
}


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
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


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


class ModelRef(BaseModel):
    """Which model to use: a checkpoint, or a job's latest checkpoint (exactly one)."""

    checkpoint_id: DbId | None = None
    job_id: DbId | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.checkpoint_id is None) == (self.job_id is None):
            raise ValueError("give exactly one of checkpoint_id or job_id")
        return self


class GenerateParams(ModelRef):
    model_config = ConfigDict(extra="forbid")

    seed: str = Field("", max_length=10_000, description="seed text the continuation follows; may be empty")
    length: int = Field(200, ge=0, le=10_000, description="characters to generate")
    temperature: float = Field(1.0, ge=0, le=10, description=f"0 is greedy; else at least {MIN_TEMPERATURE}")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    random_seed: int | None = Field(None, ge=0, le=2**64 - 1, description="chosen at random when omitted")

    @field_validator("temperature")
    @classmethod
    def _not_too_cold(cls, temperature: float) -> float:
        # Colder than this, logits / temperature overflow to inf and sampling has no distribution.
        if 0 < temperature < MIN_TEMPERATURE:
            raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE}")
        return temperature


class GenerateQuery(GenerateParams):
    """`GET /generate`'s parameters: the seed travels in the URL, whose size servers limit (64 KiB
    here), and a character can take 12 bytes percent-encoded. Longer seeds go by `POST /generate`."""

    seed: str = Field("", max_length=4000, description="seed text; up to 10,000 characters with POST")


class Timings(BaseModel):
    load_ms: float
    generate_ms: float
    total_ms: float


class GenerateOut(BaseModel):
    text: str
    checkpoint_id: int
    seed: str
    length: int
    temperature: float
    top_k: int | None
    top_p: float | None
    random_seed: int
    finish_reason: Literal["length"] = "length"
    timings: Timings


class PredictIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(pattern=r"^[0-9]+$", max_length=1000, description="the digits before the last one")


class PredictOut(BaseModel):
    checkpoint_id: int
    digits: str
    predicted_digit: int
    probabilities: list[float]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='where: e.g. ["body", "hidden_size"] or ["query", "job_id"]')
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error response (4xx and 503)."""

    detail: str = Field(description="what went wrong, naming the field(s)")
    errors: list[ErrorItem] | None = Field(None, description="one entry per invalid field (422 only)")
