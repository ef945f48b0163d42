"""`POST /score`: the log-probability of every character of a text under a model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.generation import ModelRef, Timings
from models.decode.limits import MAX_LOGPROBS

# As long as the longest text generation writes or reads (GenerateParams' seed and length).
MAX_SCORE_CHARS = 10_000


class ScoreIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_SCORE_CHARS, description="the text to score")
    top_logprobs: int = Field(
        0,
        ge=0,
        le=MAX_LOGPROBS,
        description="how many of the likeliest characters to list at each position",
    )


class ScoreOut(BaseModel):
    """Lists over the text's characters, as OpenAI's legacy `logprobs` object lays them out. Natural
    logarithms; the first character has no context, so its entries are null."""

    checkpoint_id: int
    tokens: list[str]
    token_logprobs: list[float | None]
    entropies: list[float | None] = Field(description="of the model's next-character distribution, in nats")
    top_logprobs: list[dict[str, float] | None]
    total_logprob: float = Field(description="the sum of token_logprobs")
    bits_per_character: float | None = Field(
        description="-total_logprob / ln 2 / (characters - 1); null for a one-character text"
    )
    timings: Timings
