"""The OpenAI-compatible API (`/v1`), for the clients people already use: the `openai` package,
LangChain, lm-evaluation-harness, curl scripts written for vLLM or TGI. Errors here have OpenAI's body."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SessionDep
from app.schemas.openai import ModelList
from app.services import openai_models

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models", response_model=ModelList)
def list_models(session: SessionDep) -> ModelList:
    """The named text models (`POST /models/{name}/versions`), one card per name and one per alias
    (`name@alias`): what a client may send as `model`."""
    return openai_models.model_list(session)
