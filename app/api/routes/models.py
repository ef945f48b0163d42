"""Named models: register checkpoints as versions, move aliases, read the history (MLflow's registry)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response

from app.api.deps import SessionDep
from app.api.openapi import error_responses
from app.schemas.registry import (
    AliasName,
    ModelAliasOut,
    ModelEventOut,
    ModelName,
    ModelOut,
    ModelSummary,
    ModelVersionOut,
    RegisterVersionIn,
    SetAliasIn,
    VersionNumber,
)
from app.services import model_registry

router = APIRouter(tags=["models"])

NamePath = Annotated[ModelName, Path()]
AliasPath = Annotated[AliasName, Path()]
VersionPath = Annotated[VersionNumber, Path()]


@router.get("/models", response_model=list[ModelSummary])
def list_models(session: SessionDep) -> list[ModelSummary]:
    """Every named model with its latest version and aliases."""
    return model_registry.list_models(session)


@router.get("/models/{name}", response_model=ModelOut, responses=error_responses(404))
def get_model(name: NamePath, session: SessionDep) -> ModelOut:
    return model_registry.model_out(session, name)


@router.post(
    "/models/{name}/versions",
    status_code=201,
    response_model=ModelVersionOut,
    responses=error_responses(404),
)
def register_version(
    name: NamePath, body: Annotated[RegisterVersionIn, Body()], session: SessionDep, response: Response
) -> ModelVersionOut:
    """Register a checkpoint as the name's next immutable version (1 for a new name).

    Generation then accepts `model: "<name>"` (the latest version), `"<name>:<version>"` or
    `"<name>@<alias>"`. Checkpoint retention never deletes a checkpoint a version points at."""
    version = model_registry.register_version(
        session, name, checkpoint_id=body.checkpoint_id, description=body.description
    )
    response.headers["Location"] = f"/models/{name}/versions/{version.version}"
    return version


@router.get(
    "/models/{name}/versions/{version}", response_model=ModelVersionOut, responses=error_responses(404)
)
def get_version(name: NamePath, version: VersionPath, session: SessionDep) -> ModelVersionOut:
    return model_registry.get_version(session, name, version)


@router.delete("/models/{name}/versions/{version}", status_code=204, responses=error_responses(404, 409))
def delete_version(name: NamePath, version: VersionPath, session: SessionDep) -> Response:
    """Remove a version; its number is never given again. 409 while an alias points at it."""
    model_registry.delete_version(session, name, version)
    return Response(status_code=204)


@router.put("/models/{name}/aliases/{alias}", response_model=ModelAliasOut, responses=error_responses(404))
def set_alias(
    name: NamePath, alias: AliasPath, body: Annotated[SetAliasIn, Body()], session: SessionDep
) -> ModelAliasOut:
    """Point an alias (`champion`, `staging`) at a version. Requests that start afterwards use it;
    streams already running finish on the checkpoint they started with. `latest` moves by itself."""
    return model_registry.set_alias(session, name, alias, version=body.version)


@router.get("/models/{name}/aliases/{alias}", response_model=ModelAliasOut, responses=error_responses(404))
def get_alias(
    name: NamePath,
    alias: AliasPath,
    session: SessionDep,
    at: Annotated[
        datetime | None, Query(description="what the alias meant at this moment (ISO 8601), from the history")
    ] = None,
) -> ModelAliasOut:
    return model_registry.get_alias(session, name, alias, at=at)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, responses=error_responses(404))
def delete_alias(name: NamePath, alias: AliasPath, session: SessionDep) -> Response:
    model_registry.delete_alias(session, name, alias)
    return Response(status_code=204)


@router.get("/models/{name}/history", response_model=list[ModelEventOut], responses=error_responses(404))
def model_history(name: NamePath, session: SessionDep) -> list[ModelEventOut]:
    """Every version registered or deleted and every alias moved, oldest first, with the checkpoints."""
    return model_registry.history(session, name)
