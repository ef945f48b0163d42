"""Sampling from trained models. Async routes: a request waiting for the decode engine awaits it on
the event loop and holds no server thread; the engine steps in threads of its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import CacheDep, SessionsDep
from app.api.openapi import error_responses
from app.generation import sse
from app.schemas.generation import GenerateOut, GenerateParams, GenerateQuery, PredictIn, PredictOut
from app.services import generation

router = APIRouter(tags=["generate"])

STREAM_DOC = """Like `/generate`, but the characters come as server-sent events (`text/event-stream`) as
they are generated: `data: {"text": "...", "index": n}` per chunk, where `index` is the chunk's first
character offset in the generated text and a chunk holds every character produced since the last
event was sent. The last event carries `finish_reason`, `index` (the text's length), `checkpoint_id`,
`random_seed` and `timings`. The chunks joined are `/generate`'s `text` for the same `random_seed`.
Errors found before the stream starts (422, 404, 409, 429) are ordinary JSON responses. Try it with
`curl -N`."""

# 429 (rate limit or a full batch and waiting line) is declared for every generation path by
# app/api/openapi.py, from the same rule the access middleware applies.
ERRORS = error_responses(404, 409)
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events, one `data:` line of JSON each",
        "content": {
            sse.MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": 'data: {"text": "Once up", "index": 0}\n\n'
                'data: {"text": "on a", "index": 7}\n\n'
                'data: {"finish_reason": "length", "index": 11, "checkpoint_id": 3, "random_seed": 42, '
                '"timings": {"load_ms": 0.4, "generate_ms": 2.1, "total_ms": 2.5}}\n\n',
            }
        },
    },
    **ERRORS,
}
# What both stream routes declare: their events, their errors, their documentation.
STREAM_ROUTE: dict[str, Any] = {
    "status_code": 200,  # FastAPI reads no default status from a StreamingResponse subclass
    "response_class": sse.EventStreamResponse,
    "responses": STREAM_RESPONSES,
    "description": STREAM_DOC,
}


@router.get("/generate", response_model=GenerateOut, responses=ERRORS)
async def generate_get(
    params: Annotated[GenerateQuery, Query()], sessions: SessionsDep, cache: CacheDep
) -> GenerateOut:
    """Continue `seed` by `length` characters with a text model (by `checkpoint_id` or `job_id`).

    Requests for one checkpoint are decoded together, one character per step; `timings.generate_ms`
    includes any wait for a free slot. The same `random_seed` gives the same text, alone or batched."""
    return await generation.generate(sessions, cache, params)


@router.post("/generate", response_model=GenerateOut, responses=ERRORS)
async def generate_post(params: GenerateParams, sessions: SessionsDep, cache: CacheDep) -> GenerateOut:
    return await generation.generate(sessions, cache, params, source="body")


@router.get("/generate/stream", **STREAM_ROUTE)
async def generate_stream_get(
    params: Annotated[GenerateQuery, Query()], sessions: SessionsDep, cache: CacheDep
) -> sse.EventStreamResponse:
    started = await generation.start(sessions, cache, params, source="query", streaming=True)
    return sse.EventStreamResponse(generation.events(started))


@router.post("/generate/stream", **STREAM_ROUTE)
async def generate_stream_post(
    params: GenerateParams, sessions: SessionsDep, cache: CacheDep
) -> sse.EventStreamResponse:
    started = await generation.start(sessions, cache, params, source="body", streaming=True)
    return sse.EventStreamResponse(generation.events(started))


@router.post("/predict", response_model=PredictOut, responses=ERRORS)
async def predict(body: PredictIn, sessions: SessionsDep, cache: CacheDep) -> PredictOut:
    """Predict the last digit of a palindrome with a palindrome model."""
    return await generation.predict(sessions, cache, body)
