"""`GET /v1/models`: the named text models as OpenAI model cards, one per name and one per alias.

Only text models are listed: `/v1` speaks the completions protocol, and a palindrome model completes no
text. `latest` is not listed as an alias: the bare name already means it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.tables import Checkpoint, ModelAlias, ModelVersion, RegisteredModel
from app.schemas.openai import ModelCard, ModelList
from app.schemas.registry import LATEST


def model_list(session: Session) -> ModelList:
    versions = session.execute(
        select(RegisteredModel, ModelVersion, Checkpoint)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .join(Checkpoint, Checkpoint.id == ModelVersion.checkpoint_id)
        .order_by(RegisteredModel.name, ModelVersion.version)
    ).all()
    by_model: dict[int, dict[int, tuple[RegisteredModel, ModelVersion, Checkpoint]]] = {}
    for model, version, checkpoint in versions:
        by_model.setdefault(model.id, {})[version.version] = (model, version, checkpoint)
    aliases = session.scalars(select(ModelAlias).order_by(ModelAlias.alias)).all()
    cards: list[ModelCard] = []
    for model_id, numbered in by_model.items():
        model, latest, checkpoint = numbered[max(numbered)]
        if checkpoint.task != "text":
            continue
        cards.append(_card(model.name, model, latest, checkpoint, parent=None, moved=latest.created_at))
        for alias in (a for a in aliases if a.model_id == model_id and a.alias != LATEST):
            if alias.version in numbered:
                _, version, target = numbered[alias.version]
                cards.append(
                    _card(
                        f"{model.name}@{alias.alias}",
                        model,
                        version,
                        target,
                        parent=model.name,
                        moved=alias.updated_at,
                    )
                )
    return ModelList(data=cards)


def _card(
    card_id: str,
    model: RegisteredModel,
    version: ModelVersion,
    checkpoint: Checkpoint,
    *,
    parent: str | None,
    moved: datetime,
) -> ModelCard:
    return ModelCard(
        id=card_id,
        created=int(moved.timestamp()),
        root=f"{model.name}:{version.version}",
        parent=parent,
        checkpoint_id=checkpoint.id,
        version=version.version,
        vocab_size=len(checkpoint.vocab or []),
    )
