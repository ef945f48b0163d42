"""The model registry's request and response bodies, and the grammar of a model reference.

A reference is `name` (its newest version, `latest`), `name@alias` or `name:version`, as MLflow's
`models:/name@alias` and W&B's `name:v3` / `name:alias` spell them, with `@` and `:` kept apart so
that an alias can never be mistaken for a version number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.bounds import INT32_MAX

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
MODEL_REF_PATTERN = rf"^{NAME_PATTERN}(@{ALIAS_PATTERN}|:[1-9][0-9]{{0,8}})?$"
# `latest` always means the newest version: it moves by itself and cannot be set or deleted.
LATEST = "latest"

ModelName = Annotated[
    str, Field(pattern=f"^{NAME_PATTERN}$", description="letters, digits, '.', '_' or '-'; up to 100")
]
AliasName = Annotated[
    str, Field(pattern=f"^{ALIAS_PATTERN}$", description="a letter, then letters, digits, '_' or '-'")
]
VersionNumber = Annotated[int, Field(ge=1, le=INT32_MAX)]
ModelRefStr = Annotated[
    str,
    Field(
        pattern=MODEL_REF_PATTERN,
        description="a named model: `name` (its latest version), `name@alias` or `name:version`",
        examples=["tales", "tales@champion", "tales:3"],
    ),
]


class RegisterVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint_id: Annotated[int, Field(ge=1, le=INT32_MAX)]
    description: str = Field("", max_length=500)


class SetAliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber


class ModelVersionOut(BaseModel):
    name: str
    version: int
    checkpoint_id: int
    job_id: int
    step: int
    task: str
    model_type: str
    description: str
    aliases: list[str] = Field(description="the aliases that point at this version, `latest` included")
    created_at: datetime


class ModelAliasOut(BaseModel):
    name: str
    alias: str
    version: int
    checkpoint_id: int
    updated_at: datetime | None = Field(description="when it last moved; null for `latest`")


class ModelSummary(BaseModel):
    name: str
    latest_version: int | None
    version_count: int
    aliases: dict[str, int] = Field(description="alias -> version, `latest` included")
    created_at: datetime
    updated_at: datetime


class ModelOut(ModelSummary):
    versions: list[ModelVersionOut]


class ModelEventOut(BaseModel):
    action: Literal["version_created", "version_deleted", "alias_set", "alias_deleted"]
    alias: str | None
    version: int | None
    old_checkpoint_id: int | None
    new_checkpoint_id: int | None
    at: datetime
