"""The OpenAI-compatible protocol's bodies (`/v1`): model cards, errors (completions follow)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
