"""Sessions' bodies: a text model's state kept between requests, fed, continued, forked and clamped."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.generation import ModelRef, Temperature
from models.decode.limits import MAX_CLAMP_STEPS, MAX_CLAMP_VALUE, MAX_RANDOM_SEED

# Characters one request feeds or generates: as much as /generate's prompt or length, and /score's text.
MAX_SESSION_TEXT = 10_000
# Characters a session may consume over its life. The state is the same 2 x L x H floats whatever
# the count, so this bounds only what one session can make a server compute: 1,000 full requests.
MAX_SESSION_CHARACTERS = 10_000_000


class SessionIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        "", max_length=MAX_SESSION_TEXT, description="the text whose state the session starts from"
    )


class ClampOut(BaseModel):
    layer: int
    unit: int
    value: float
    steps: int = Field(description="characters it is still held for")


class SessionOut(BaseModel):
    id: str
    checkpoint_id: int
    model: str | None = Field(description="the model name it was made with, if any")
    num_layers: int
    hidden_size: int
    characters: int = Field(description="characters consumed: prompt, appended and generated")
    clamps: list[ClampOut] = Field(description="pending clamps")
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime = Field(
        description="when it is deleted unless used before (RNNLAB_SESSION_IDLE_SECONDS)"
    )


class SessionList(BaseModel):
    sessions: list[SessionOut]


class AppendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_SESSION_TEXT, description="the text to feed")


class AppendOut(BaseModel):
    session: SessionOut
    tokens: list[str]
    surprisal_bits: list[float | None] = Field(
        description="-log2 p(character | everything before it); null for the first character of a "
        "session that had consumed nothing (no context)"
    )
    bits_per_character: float | None = Field(description="the mean of the non-null surprisals")


class SessionGenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    length: int = Field(200, ge=1, le=MAX_SESSION_TEXT, description="characters to generate")
    temperature: Temperature = 1.0
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    random_seed: int | None = Field(
        None, ge=0, le=MAX_RANDOM_SEED, description="chosen at random when omitted"
    )


class SessionGenerateOut(BaseModel):
    session: SessionOut
    text: str
    random_seed: int


class ForkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClampIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: int = Field(ge=0, description="which layer's cell (< the model's num_layers)")
    unit: int = Field(ge=0, description="which unit of it (< the model's hidden_size)")
    value: float = Field(ge=-MAX_CLAMP_VALUE, le=MAX_CLAMP_VALUE, description="the cell value c to hold")
    steps: int = Field(ge=1, le=MAX_CLAMP_STEPS, description="the next characters it is held after")
