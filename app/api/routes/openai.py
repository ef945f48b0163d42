"""The OpenAI-compatible API (`/v1`), for the clients people already use: the `openai` package,
LangChain, lm-evaluation-harness, curl scripts written for vLLM or TGI. Errors here have OpenAI's body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import CacheDep, SessionDep, SessionsDep
from app.generation import sse
from app.schemas.openai import Completion, CompletionRequest, ModelList, OpenAIErrorBody
from app.services import completions, openai_models

router = APIRouter(prefix="/v1", tags=["openai"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OpenAIErrorBody,
        "description": "A request this server cannot serve; `param` names the field",
    },
    404: {"model": OpenAIErrorBody, "description": "The model `x` does not exist."},
}
STREAM_DOC = """With `stream: true` the answer is server-sent events in OpenAI's format: one `data:` line per
chunk (`{"id", "object": "text_completion", "created", "model", "choices": [{"index", "text",
"logprobs", "finish_reason"}]}`), each choice's last chunk with its `finish_reason` (and `stop_reason`),
a usage chunk with `stream_options.include_usage`, then `data: [DONE]`."""


@router.get("/models", response_model=ModelList)
def list_models(session: SessionDep) -> ModelList:
    """The named text models (`POST /models/{name}/versions`), one card per name and one per alias
    (`name@alias`): what a client may send as `model`."""
    return openai_models.model_list(session)


@router.post(
    "/completions",
    response_model=Completion,
    responses=ERRORS
    | {200: {"content": {"application/json": {}, sse.MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    description=STREAM_DOC,
)
async def create_completion(
    body: CompletionRequest, sessions: SessionsDep, cache: CacheDep
) -> Completion | sse.EventStreamResponse:
    """OpenAI's completions (legacy) with vLLM's extras, over the same batching engine as `/generate`.
    A token is one character. The bearer token is the client's `api_key`."""
    started = await completions.start(sessions, cache, body, streaming=body.stream)
    if body.stream:
        return sse.EventStreamResponse(completions.events(started))
    return await completions.complete(started)
