"""How a named model reads in a response: its summary, its versions with their checkpoints and aliases."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.tables import Checkpoint, ModelAlias, ModelVersion, RegisteredModel
from app.schemas.registry import LATEST, ModelOut, ModelSummary, ModelVersionOut


def model_out(session: Session, model: RegisteredModel) -> ModelOut:
    versions = session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
    ).all()
    return ModelOut(
        **summary(session, model).model_dump(), versions=[version_out(session, model, v) for v in versions]
    )


def summary(session: Session, model: RegisteredModel) -> ModelSummary:
    numbers = list(session.scalars(select(ModelVersion.version).where(ModelVersion.model_id == model.id)))
    rows = session.execute(
        select(ModelAlias.alias, ModelAlias.version).where(ModelAlias.model_id == model.id)
    )
    aliases = {alias: version for alias, version in rows}
    latest = max(numbers) if numbers else None
    if latest is not None:
        aliases[LATEST] = latest
    return ModelSummary(
        name=model.name,
        latest_version=latest,
        version_count=len(numbers),
        aliases=dict(sorted(aliases.items())),
        created_at=model.created_at,
        updated_at=model.updated_at,
    )


def version_out(session: Session, model: RegisteredModel, version: ModelVersion) -> ModelVersionOut:
    checkpoint = session.get(Checkpoint, version.checkpoint_id)
    assert checkpoint is not None  # the foreign key keeps it
    aliases = sorted(
        session.scalars(
            select(ModelAlias.alias).where(
                ModelAlias.model_id == model.id, ModelAlias.version == version.version
            )
        )
    )
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
    if latest == version.version:
        aliases.append(LATEST)
    return ModelVersionOut(
        name=model.name,
        version=version.version,
        checkpoint_id=version.checkpoint_id,
        job_id=checkpoint.job_id,
        step=checkpoint.step,
        task=checkpoint.task,
        model_type=checkpoint.model_type,
        description=version.description,
        aliases=aliases,
        created_at=version.created_at,
    )
