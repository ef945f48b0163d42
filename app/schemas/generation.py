"""Generation's and prediction's bodies, and the one way a request names its model."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.bounds import DbId
from app.schemas.registry import ModelRefStr
from models.config import MIN_TEMPERATURE
from models.decode.stops import MAX_STOP_LENGTH, MAX_STOPS


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


MAX_N = 8
# A deprecated field: marked in the OpenAPI document, with no warning at run time.
DEPRECATED: dict[str, Any] = {"deprecated": True}


class GenerateParams(ModelRef):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(
        None, max_length=10_000, description="the text the continuation follows; may be empty"
    )
    seed: str | None = Field(
        None,
        max_length=10_000,
        description="deprecated: the old name of `prompt` (a random seed is `random_seed`)",
        json_schema_extra=DEPRECATED,
    )
    length: int = Field(200, ge=0, le=10_000, description="characters to generate (at most)")
    temperature: float = Field(1.0, ge=0, le=10, description=f"0 is greedy; else at least {MIN_TEMPERATURE}")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    random_seed: int | None = Field(
        None,
        ge=0,
        le=2**64 - 1,
        description="chosen at random when omitted; continuation i of `n` uses random_seed + i (mod 2**64)",
    )
    stop: list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]] = Field(
        [],
        max_length=MAX_STOPS,
        description=f"up to {MAX_STOPS} strings: the text ends before the first one it produces",
    )
    min_length: int = Field(
        0, ge=0, le=10_000, description="no stop string ends the text before this many characters"
    )
    include_stop_str_in_output: bool = Field(False, description="keep the stop string that ended the text")
    n: int = Field(1, ge=1, le=MAX_N, description="continuations of the prompt, each its own stream")

    @field_validator("temperature")
    @classmethod
    def _not_too_cold(cls, temperature: float) -> float:
        # Colder than this, logits / temperature overflow to inf and sampling has no distribution.
        if 0 < temperature < MIN_TEMPERATURE:
            raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE}")
        return temperature

    @model_validator(mode="after")
    def _one_prompt(self) -> Self:
        if self.prompt is not None and self.seed is not None:
            raise ValueError("give prompt, or its deprecated name seed, not both")
        return self

    @property
    def prompt_field(self) -> str:
        """The name the prompt came by, for error locations."""
        return "seed" if self.seed is not None else "prompt"

    @property
    def prompt_text(self) -> str:
        return self.prompt if self.prompt is not None else self.seed or ""


class GenerateQuery(GenerateParams):
    """`GET /generate`'s parameters: the prompt travels in the URL, whose size servers limit (64 KiB
    here), and a character can take 12 bytes percent-encoded. Longer prompts go by `POST /generate`."""

    prompt: str | None = Field(None, max_length=4000, description="up to 10,000 characters with POST")
    seed: str | None = Field(
        None,
        max_length=4000,
        description="deprecated: the old name of `prompt`",
        json_schema_extra=DEPRECATED,
    )


class Timings(BaseModel):
    load_ms: float
    generate_ms: float
    total_ms: float


FinishReason = Literal["length", "stop"]


class Choice(BaseModel):
    """One continuation of `n`."""

    index: int
    text: str
    finish_reason: FinishReason
    stop_reason: str | None = Field(description="the stop string that ended the text; null otherwise")
    random_seed: int


class GenerateOut(BaseModel):
    """The first continuation's fields at the top (as before `n`), every continuation in `choices`."""

    text: str
    checkpoint_id: int
    prompt: str
    seed: str = Field(description="deprecated: the prompt, under its old name", json_schema_extra=DEPRECATED)
    length: int
    temperature: float
    top_k: int | None
    top_p: float | None
    random_seed: int
    finish_reason: FinishReason = "length"
    stop_reason: str | None = None
    choices: list[Choice]
    timings: Timings


class PredictIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(pattern=r"^[0-9]+$", max_length=1000, description="the digits before the last one")


class PredictOut(BaseModel):
    checkpoint_id: int
    digits: str
    predicted_digit: int
    probabilities: list[float]
