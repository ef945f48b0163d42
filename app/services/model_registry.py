"""Named models: immutable versions of checkpoints, movable aliases, and the history of every move.

MLflow's model registry and W&B's artifacts give a run's output a name that clients keep using while
what it means moves on; here a name's versions point at checkpoints. Every change is one transaction
that also appends a `ModelEvent`, so the history is never behind the state it explains, and
`resolve(..., at=)` can answer what a reference meant at any past moment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import (
    CheckpointNotFound,
    InvalidInput,
    ModelAliasNotFound,
    ModelHasNoVersions,
    ModelNotFound,
    ModelVersionNotFound,
    VersionAliased,
)
from app.core.tables import Checkpoint, ModelAlias, ModelVersion, RegisteredModel, utcnow
from app.schemas.registry import (
    ALIAS_PATTERN,
    LATEST,
    MODEL_REF_PATTERN,
    ModelAliasOut,
    ModelEventOut,
    ModelOut,
    ModelSummary,
    ModelVersionOut,
)
from app.services import model_history, model_views

_REF = re.compile(MODEL_REF_PATTERN)


def parse_ref(ref: str, loc: Sequence[str | int] = ("body", "model")) -> tuple[str, str | int]:
    """`tales` -> (tales, latest); `tales@champion` -> (tales, champion); `tales:3` -> (tales, 3)."""
    if not _REF.match(ref):
        raise InvalidInput(
            loc, f"`{ref}` is not a model reference: use `name`, `name@alias` or `name:version`"
        )
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias
    if ":" in ref:
        name, version = ref.split(":", 1)
        return name, int(version)
    return ref, LATEST


def get_model(session: Session, name: str, *, field: str = "name") -> RegisteredModel:
    model = session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).first()
    if model is None:
        raise ModelNotFound(name, field)
    return model


def resolve(
    session: Session, ref: str, *, at: datetime | None = None, loc: Sequence[str] = ("body", "model")
) -> int:
    """The checkpoint id a model reference names now, or at the moment `at` (replaying the history)."""
    name, selector = parse_ref(ref, loc)
    field = loc[-1]
    if at is None and (found := session.scalar(_resolution(name, selector))) is not None:
        return found  # every generation request by name comes here: one query
    model = get_model(session, name, field=field)  # not found: which part is missing, for the error
    if at is not None:
        return model_history.resolve_at(session, model, selector, at, field)
    if isinstance(selector, int):
        return _version(session, model, selector, field).checkpoint_id
    if selector == LATEST:
        latest = _latest(session, model)
        if latest is None:
            raise ModelHasNoVersions(name, field)
        return latest.checkpoint_id
    alias = _alias(session, model, selector, field)
    return _version(session, model, alias.version, field).checkpoint_id


def _resolution(name: str, selector: str | int) -> Select[int]:
    """The checkpoint of `name` at a version, its newest, or an alias's, in one query (None: none)."""
    query = (
        select(ModelVersion.checkpoint_id)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(RegisteredModel.name == name)
    )
    if isinstance(selector, int):
        return query.where(ModelVersion.version == selector)
    if selector == LATEST:
        return query.order_by(ModelVersion.version.desc()).limit(1)
    return query.join(
        ModelAlias,
        (ModelAlias.model_id == ModelVersion.model_id) & (ModelAlias.version == ModelVersion.version),
    ).where(ModelAlias.alias == selector)


def register_version(
    session: Session, name: str, *, checkpoint_id: int, description: str = ""
) -> ModelVersionOut:
    """Add the checkpoint as `name`'s next version (1 for a new name); returns it."""
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise CheckpointNotFound(checkpoint_id)
    model = _get_or_create(session, name)
    # Row-locked on PostgreSQL; SQLite serialises writers. The unique (model, version) is the last guard.
    session.refresh(model, with_for_update=True)
    model.last_version += 1
    model.updated_at = utcnow()
    version = ModelVersion(
        model_id=model.id, version=model.last_version, checkpoint_id=checkpoint.id, description=description
    )
    session.add(version)
    model_history.record(session, model, "version_created", version=version.version, new=checkpoint.id)
    session.commit()
    return model_views.version_out(session, model, version)


def set_alias(session: Session, name: str, alias: str, *, version: int) -> ModelAliasOut:
    """Point `alias` at `version` (creating it); the next request that names it gets the new version."""
    _check_alias_settable(alias)
    model = get_model(session, name)
    target = _version(session, model, version, "version", loc=("body", "version"))
    row = session.scalars(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    ).first()
    old = None
    if row is None:
        row = ModelAlias(model_id=model.id, alias=alias, version=version)
        session.add(row)
    else:
        old = _checkpoint_of(session, model, row.version)
        row.version = version
    row.updated_at = model.updated_at = utcnow()
    model_history.record(
        session, model, "alias_set", alias=alias, version=version, old=old, new=target.checkpoint_id
    )
    session.commit()
    return ModelAliasOut(
        name=name, alias=alias, version=version, checkpoint_id=target.checkpoint_id, updated_at=row.updated_at
    )


def get_alias(session: Session, name: str, alias: str, *, at: datetime | None = None) -> ModelAliasOut:
    model = get_model(session, name)
    if at is not None:
        version, updated = model_history.alias_at(session, model, alias, at)
        return ModelAliasOut(
            name=name,
            alias=alias,
            version=version,
            checkpoint_id=model_history.resolve_at(session, model, version, at, "alias"),
            updated_at=updated,
        )
    if alias == LATEST:
        latest = _latest(session, model)
        if latest is None:
            raise ModelHasNoVersions(name, "alias")
        return ModelAliasOut(
            name=name,
            alias=alias,
            version=latest.version,
            checkpoint_id=latest.checkpoint_id,
            updated_at=None,
        )
    row = _alias(session, model, alias, "alias")
    target = _version(session, model, row.version, "alias")
    return ModelAliasOut(
        name=name,
        alias=alias,
        version=row.version,
        checkpoint_id=target.checkpoint_id,
        updated_at=row.updated_at,
    )


def delete_alias(session: Session, name: str, alias: str) -> None:
    _check_alias_settable(alias)
    model = get_model(session, name)
    row = _alias(session, model, alias, "alias")
    old = _checkpoint_of(session, model, row.version)
    session.delete(row)
    model.updated_at = utcnow()
    model_history.record(session, model, "alias_deleted", alias=alias, version=row.version, old=old)
    session.commit()


def delete_version(session: Session, name: str, version: int) -> None:
    """Remove a version (its number is never given again); refused while an alias points at it."""
    model = get_model(session, name)
    row = _version(session, model, version, "version", loc=("path", "version"))
    aliases = list(
        session.scalars(
            select(ModelAlias.alias)
            .where(ModelAlias.model_id == model.id, ModelAlias.version == version)
            .order_by(ModelAlias.alias)
        )
    )
    if aliases:
        raise VersionAliased(name, version, aliases)
    session.delete(row)
    model.updated_at = utcnow()
    model_history.record(session, model, "version_deleted", version=version, old=row.checkpoint_id)
    session.commit()


def get_version(session: Session, name: str, version: int) -> ModelVersionOut:
    model = get_model(session, name)
    return model_views.version_out(
        session, model, _version(session, model, version, "version", loc=("path", "version"))
    )


def list_models(session: Session) -> list[ModelSummary]:
    models = session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
    return [model_views.summary(session, model) for model in models]


def model_out(session: Session, name: str) -> ModelOut:
    return model_views.model_out(session, get_model(session, name))


def history(session: Session, name: str) -> list[ModelEventOut]:
    return model_history.events(session, get_model(session, name))


def _get_or_create(session: Session, name: str) -> RegisteredModel:
    model = session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).first()
    if model is not None:
        return model
    model = RegisteredModel(name=name, last_version=0)
    try:
        with session.begin_nested():
            session.add(model)
    except IntegrityError:  # registered by a concurrent request meanwhile: use theirs
        return get_model(session, name)
    return model


def _check_alias_settable(alias: str) -> None:
    if alias == LATEST:
        raise InvalidInput(("path", "alias"), "`latest` always follows the newest version; it cannot be set")
    if not re.fullmatch(ALIAS_PATTERN, alias):
        raise InvalidInput(("path", "alias"), "an alias is a letter, then letters, digits, '_' or '-'")


def _version(
    session: Session, model: RegisteredModel, version: int, field: str, *, loc: Sequence[str] | None = None
) -> ModelVersion:
    row = session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
    ).first()
    if row is None:
        if loc is not None and version > model.last_version:
            # A version that was never given (as opposed to one deleted) is a bad value, not a gone resource.
            raise InvalidInput(loc, f"the model `{model.name}` has versions up to {model.last_version}")
        raise ModelVersionNotFound(model.name, version, field)
    return row


def _alias(session: Session, model: RegisteredModel, alias: str, field: str) -> ModelAlias:
    row = session.scalars(
        select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
    ).first()
    if row is None:
        raise ModelAliasNotFound(model.name, alias, field)
    return row


def _latest(session: Session, model: RegisteredModel) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version.desc())
    ).first()


def _checkpoint_of(session: Session, model: RegisteredModel, version: int) -> int | None:
    return session.scalar(
        select(ModelVersion.checkpoint_id).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    )
