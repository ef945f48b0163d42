"""The learning timeline: one prompt sampled from every kept checkpoint of a text job, with the step
and validation bits per character beside each sample (the course reports' "samples at step N")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.generation import Temperature
from models.decode.limits import MAX_RANDOM_SEED

# Each row is one checkpoint loaded and one generation of `length` characters, in the request.
MAX_TIMELINE_PROMPT = 1_000
MAX_TIMELINE_LENGTH = 1_000
MAX_TIMELINE_CHECKPOINTS = 32
DEFAULT_TIMELINE_LENGTH = 100
DEFAULT_TEMPERATURE = 1.0  # POST /generate's default: the same request gives the same text there


class TimelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", max_length=MAX_TIMELINE_PROMPT, description="the text every sample continues")
    length: int = Field(
        DEFAULT_TIMELINE_LENGTH, ge=0, le=MAX_TIMELINE_LENGTH, description="characters per sample"
    )
    temperature: Temperature = DEFAULT_TEMPERATURE
    random_seed: int | None = Field(
        None,
        ge=0,
        le=MAX_RANDOM_SEED,
        description="one seed for every checkpoint (the rows differ only by their weights); drawn if omitted",
    )
    checkpoints: int = Field(
        MAX_TIMELINE_CHECKPOINTS,
        ge=1,
        le=MAX_TIMELINE_CHECKPOINTS,
        description="at most this many of the kept checkpoints, evenly spread, first and last included",
    )


class TimelineRow(BaseModel):
    checkpoint_id: int
    step: int
    val_bits_per_char: float | None = Field(description="val_loss (nats) / ln 2, from val_loss_step")
    val_loss_step: int | None = Field(
        description="the step of that val_loss: the checkpoint's own, else the latest before it; null if none"
    )
    train_accuracy: float | None = Field(
        description="next-character accuracy of the training batch at accuracy_step (same rule)"
    )
    accuracy_step: int | None
    text: str = Field(description="the continuation (the prompt is not repeated)")


class TimelineOut(BaseModel):
    job_id: int
    prompt: str
    length: int
    temperature: float
    random_seed: int = Field(description="the seed every row used: give it again for the same table")
    kept_checkpoints: int = Field(
        description="how many checkpoints the job keeps; rows holds at most `checkpoints`"
    )
    rows: list[TimelineRow]
