"""The OpenAI-compatible protocol's bodies (`/v1`): model cards, completions and errors.

Lengths are counted in characters: a character model's token is one character.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.generation import MAX_N, Temperature
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

MAX_PROMPTS = 8
MAX_CHARS = 10_000

StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]


class ModelCard(BaseModel):
    """One named model as OpenAI's `GET /v1/models` lists it, with vLLM's `root` and `parent`."""

    id: str = Field(description="what to send as `model`: a name (its latest version) or `name@alias`")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time the name (or the alias) last moved")
    owned_by: str = "rnnlab"
    root: str = Field(description="the version it resolves to now, `name:version`")
    parent: str | None = Field(description="for an alias, the name it belongs to")
    checkpoint_id: int
    version: int
    vocab_size: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """The body of every error under `/v1`, as OpenAI's and vLLM's servers send it."""

    error: OpenAIError


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class CompletionRequest(BaseModel):
    """OpenAI's legacy completions request, with vLLM's and TGI's extras (`top_k`, `repetition_penalty`,
    `min_tokens`, `include_stop_str_in_output`). A field rnnlab cannot honour is refused, naming it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200, description="a named model: `name`, `name@alias` or `name:version`")
    prompt: (
        str
        | Annotated[
            list[Annotated[str, Field(max_length=MAX_CHARS)]], Field(min_length=1, max_length=MAX_PROMPTS)
        ]
    ) = Field(max_length=MAX_CHARS, description=f"a text, or a list of up to {MAX_PROMPTS}")
    max_tokens: int = Field(16, ge=0, le=MAX_CHARS, description="characters to generate")
    temperature: Temperature = 1.0
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_N, description="completions per prompt")
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOPS)] | None = None
    presence_penalty: float = Field(0.0, ge=-MAX_ADDITIVE_PENALTY, le=MAX_ADDITIVE_PENALTY)
    frequency_penalty: float = Field(0.0, ge=-MAX_ADDITIVE_PENALTY, le=MAX_ADDITIVE_PENALTY)
    seed: int | None = Field(None, ge=0, le=MAX_RANDOM_SEED, description="the random seed")
    user: str | None = Field(None, max_length=256)
    # Fields OpenAI defines that rnnlab cannot honour: accepted only at their neutral values.
    logit_bias: dict[str, float] | None = None
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=MAX_N)
    # vLLM and TGI extras.
    top_k: int | None = Field(None, ge=-1, description="-1 or 0: no top-k")
    repetition_penalty: float = Field(1.0, gt=0, le=MAX_REPETITION_PENALTY)
    min_tokens: int = Field(0, ge=0, le=MAX_CHARS)
    include_stop_str_in_output: bool = False
    # rnnlab's own, as on /generate.
    penalty_window: int = Field(DEFAULT_PENALTY_WINDOW, ge=1, le=MAX_PENALTY_WINDOW)
    no_repeat_ngram_size: int = Field(0, ge=0, le=MAX_NO_REPEAT_NGRAM_SIZE)

    def unhonourable(self) -> tuple[str, str] | None:
        """(field, why) for the first field set to a value rnnlab cannot honour: refused, never ignored."""
        if self.logit_bias:
            return "logit_bias", "is not supported by this server"
        if self.suffix:
            return "suffix", "is not supported: a character model only continues text"
        if self.best_of is not None and self.best_of > self.n:
            return "best_of", "greater than n is not supported: every completion generated is returned"
        if self.stream_options is not None and not self.stream:
            return "stream_options", "can only be given with stream: true"
        if 0 < self.temperature < MIN_TEMPERATURE:
            return "temperature", f"must be 0 (greedy) or at least {MIN_TEMPERATURE}"
        return None

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy shape: lists over the choice's characters (the prompt's too with `echo`)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None
    stop_reason: str | None = Field(None, description="the stop string that ended the text (vLLM)")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
