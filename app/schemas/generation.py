"""Generation's and prediction's bodies, and the one way a request names its model."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.bounds import DbId
from app.schemas.registry import ModelRefStr
from models.config import MIN_TEMPERATURE


class ModelRef(BaseModel):
    """Which model to use: a checkpoint, a job's latest checkpoint, or a named model (exactly one)."""

    checkpoint_id: DbId | None = None
    job_id: DbId | None = None
    model: ModelRefStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [self.checkpoint_id, self.job_id, self.model]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of checkpoint_id, job_id or model")
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
