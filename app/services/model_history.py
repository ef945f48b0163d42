"""The history of a named model: every change appended as it happens, and replayed to answer what a
reference meant at a past moment ("what did `tales@champion` mean on Tuesday")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import ModelAliasNotFound, ModelHasNoVersions, ModelVersionNotFound
from app.core.tables import ModelEvent, RegisteredModel, utcnow
from app.schemas.registry import LATEST, ModelEventOut


def record(
    session: Session,
    model: RegisteredModel,
    action: str,
    *,
    alias: str | None = None,
    version: int | None = None,
    old: int | None = None,
    new: int | None = None,
) -> None:
    """Append one event in the caller's transaction: the history is never behind the state it explains."""
    session.add(
        ModelEvent(
            model_id=model.id,
            action=action,
            alias=alias,
            version=version,
            old_checkpoint_id=old,
            new_checkpoint_id=new,
            at=utcnow(),
        )
    )


def events(session: Session, model: RegisteredModel) -> list[ModelEventOut]:
    events = session.scalars(
        select(ModelEvent).where(ModelEvent.model_id == model.id).order_by(ModelEvent.id)
    ).all()
    return [ModelEventOut.model_validate(e, from_attributes=True) for e in events]


def _events_until(session: Session, model: RegisteredModel, at: datetime) -> list[ModelEvent]:
    return list(
        session.scalars(
            select(ModelEvent)
            .where(ModelEvent.model_id == model.id, ModelEvent.at <= at)
            .order_by(ModelEvent.id)
        )
    )


def _replay(
    session: Session, model: RegisteredModel, at: datetime
) -> tuple[dict[int, int], dict[str, tuple[int, datetime]]]:
    """The versions (number -> checkpoint) and aliases (name -> (version, moved at)) as they were at `at`."""
    versions: dict[int, int] = {}
    aliases: dict[str, tuple[int, datetime]] = {}
    for event in _events_until(session, model, at):
        if event.action == "version_created" and event.version is not None and event.new_checkpoint_id:
            versions[event.version] = event.new_checkpoint_id
        elif event.action == "version_deleted" and event.version is not None:
            versions.pop(event.version, None)
        elif event.action == "alias_set" and event.alias and event.version is not None:
            aliases[event.alias] = (event.version, event.at)
        elif event.action == "alias_deleted" and event.alias:
            aliases.pop(event.alias, None)
    return versions, aliases


def alias_at(
    session: Session, model: RegisteredModel, alias: str, at: datetime
) -> tuple[int, datetime | None]:
    versions, aliases = _replay(session, model, at)
    if alias == LATEST:
        if not versions:
            raise ModelHasNoVersions(model.name, "alias")
        return max(versions), None
    if alias not in aliases:
        raise ModelAliasNotFound(model.name, alias, "alias")
    return aliases[alias]


def resolve_at(
    session: Session, model: RegisteredModel, selector: str | int, at: datetime, field: str
) -> int:
    versions, aliases = _replay(session, model, at)
    if isinstance(selector, str):
        if selector == LATEST:
            if not versions:
                raise ModelHasNoVersions(model.name, field)
            selector = max(versions)
        elif selector in aliases:
            selector = aliases[selector][0]
        else:
            raise ModelAliasNotFound(model.name, selector, field)
    if selector not in versions:
        raise ModelVersionNotFound(model.name, selector, field)
    return versions[selector]
