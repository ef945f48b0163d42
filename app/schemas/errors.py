"""The body of every error response (4xx and 503)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='where: e.g. ["body", "hidden_size"] or ["query", "job_id"]')
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error response (4xx and 503)."""

    detail: str = Field(description="what went wrong, naming the field(s)")
    errors: list[ErrorItem] | None = Field(None, description="one entry per invalid field (422 only)")
