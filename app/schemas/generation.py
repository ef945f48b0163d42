"""Generation's and prediction's bodies, and the one way a request names its model."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.core.bounds import DbId
from app.schemas.registry import ModelRefStr
from models.config import MIN_TEMPERATURE
from models.decode.limits import (
    DEFAULT_PENALTY_WINDOW,
    MAX_ADDITIVE_PENALTY,
    MAX_LOGPROBS,
    MAX_NO_REPEAT_NGRAM_SIZE,
    MAX_PENALTY_WINDOW,
    MAX_RANDOM_SEED,
    MAX_REPETITION_PENALTY,
    MAX_STOP_LENGTH,
    MAX_STOPS,
)


def _not_too_cold(temperature: float) -> float:
    # Colder than this, logits / temperature overflow to inf and sampling has no distribution.
    if 0 < temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE}")
    return temperature


# A sampling temperature, the same rule in every body that samples (/generate, /v1, sessions, timeline).
Temperature = Annotated[
    float,
    Field(ge=0, le=10, description=f"0 is greedy; else at least {MIN_TEMPERATURE}"),
    AfterValidator(_not_too_cold),
]


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
    temperature: Temperature = 1.0
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    random_seed: int | None = Field(
        None,
        ge=0,
        le=MAX_RANDOM_SEED,
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
    logprobs: int = Field(
        0,
        ge=0,
        le=MAX_LOGPROBS,
        description="0 is off; k reports each generated character's log-probability and the k likeliest "
        "alternatives, from the model's raw distribution (before penalties and sampling settings)",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0,
        le=MAX_REPETITION_PENALTY,
        description="CTRL / transformers: a character in the window has its logit divided by this when "
        "positive, multiplied when negative; 1 is off",
    )
    presence_penalty: float = Field(
        0.0,
        ge=-MAX_ADDITIVE_PENALTY,
        le=MAX_ADDITIVE_PENALTY,
        description="OpenAI: subtracted from the logit of every character in the window",
    )
    frequency_penalty: float = Field(
        0.0,
        ge=-MAX_ADDITIVE_PENALTY,
        le=MAX_ADDITIVE_PENALTY,
        description="OpenAI: times its count in the window, subtracted from a character's logit",
    )
    penalty_window: int = Field(
        DEFAULT_PENALTY_WINDOW,
        ge=1,
        le=MAX_PENALTY_WINDOW,
        description="the last characters (prompt and text) the three penalties count: a character model "
        "sees most of its vocabulary within a few hundred, so an unbounded window would bend spelling",
    )
    no_repeat_ngram_size: int = Field(
        0,
        ge=0,
        le=MAX_NO_REPEAT_NGRAM_SIZE,
        description="transformers: no n-gram of this size occurs twice in prompt and text; 0 is off",
    )

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

    @classmethod
    def between(cls, started: float, loaded: float, done: float) -> Timings:
        """From three perf_counter() instants: the request's start, the model ready, the answer ready."""
        return cls(
            load_ms=(loaded - started) * 1000,
            generate_ms=(done - loaded) * 1000,
            total_ms=(done - started) * 1000,
        )


FinishReason = Literal["length", "stop"]


class TextLogprobs(BaseModel):
    """Lists over a text's characters, as OpenAI's legacy `logprobs` object lays them out (natural logs)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]


class Choice(BaseModel):
    """One continuation of `n`."""

    index: int
    text: str
    finish_reason: FinishReason
    stop_reason: str | None = Field(description="the stop string that ended the text; null otherwise")
    random_seed: int
    logprobs: TextLogprobs | None = Field(None, description="with `logprobs`: the generated characters'")


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
