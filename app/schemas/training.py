"""`POST /train`'s bodies: the training configs (models/config.py) plus the service's own fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from app.core.bounds import DbId
from models.config import PalindromeConfig, TextConfig


class PalindromeTrainRequest(PalindromeConfig):
    """A palindrome job: the training config, optionally resumed from a checkpoint."""

    resume_from: DbId | None = Field(None, description="checkpoint id to continue from")


class TextTrainRequest(TextConfig):
    """A text job: the training config, the corpus, optionally resumed from a checkpoint."""

    dataset_id: DbId | None = Field(None, description="dataset to train on; the built-in one if omitted")
    resume_from: DbId | None = Field(None, description="checkpoint id to continue from")


TrainRequest = Annotated[PalindromeTrainRequest | TextTrainRequest, Field(discriminator="task")]


# What a train request adds to its training config: stored in the job row's own columns, never in the
# config the loop runs (derived, so a new service field cannot leak into stored configs).
SERVICE_FIELDS = {
    name
    for request, config in ((PalindromeTrainRequest, PalindromeConfig), (TextTrainRequest, TextConfig))
    for name in set(request.model_fields) - set(config.model_fields)
}
