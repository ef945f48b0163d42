"""Sessions: a text model's state kept between requests (app/services/sessions.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from app.api.deps import OwnerDep, SessionContextDep
from app.api.openapi import error_responses
from app.schemas.sessions import (
    AppendIn,
    AppendOut,
    ClampIn,
    ForkIn,
    SessionGenerateIn,
    SessionGenerateOut,
    SessionIn,
    SessionList,
    SessionOut,
)
from app.services import sessions as service

router = APIRouter(prefix="/sessions", tags=["sessions"])
SessionId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]


@router.post("", response_model=SessionOut, status_code=201, responses=error_responses(404, 409))
async def create_session(
    body: Annotated[SessionIn, Body()],
    ctx: SessionContextDep,
    owner: OwnerDep,
) -> SessionOut:
    """A session holding a text model's state after `prompt` (empty: the state before any text).
    409 for a palindrome model; 422 names prompt characters outside the vocabulary; 429 past
    RNNLAB_MAX_SESSIONS_PER_TOKEN."""
    return await service.create(ctx, owner, body)


@router.get("", response_model=SessionList)
async def list_sessions(ctx: SessionContextDep, owner: OwnerDep) -> SessionList:
    """The caller's token's live sessions, most recently used first."""
    return await service.list_sessions(ctx, owner)


@router.get("/{session_id}", response_model=SessionOut, responses=error_responses(404))
async def get_session(session_id: SessionId, ctx: SessionContextDep, owner: OwnerDep) -> SessionOut:
    """The session's model, characters consumed, pending clamps and expiry (reading it does not
    extend it). 404 for an unknown, expired or another token's session."""
    return await service.get(ctx, owner, session_id)


@router.delete("/{session_id}", status_code=204, responses=error_responses(404))
async def delete_session(session_id: SessionId, ctx: SessionContextDep, owner: OwnerDep) -> Response:
    await service.delete(ctx, owner, session_id)
    return Response(status_code=204)


@router.post("/{session_id}/append", response_model=AppendOut, responses=error_responses(404, 409))
async def append(
    session_id: SessionId,
    body: Annotated[AppendIn, Body()],
    ctx: SessionContextDep,
    owner: OwnerDep,
) -> AppendOut:
    """Feed `text`: each character's surprisal in bits under the state before it, and the state after
    it. 422 names characters outside the vocabulary; 409 if another request changed the session meanwhile."""
    return await service.append(ctx, owner, session_id, body)


@router.post("/{session_id}/generate", response_model=SessionGenerateOut, responses=error_responses(404, 409))
async def generate(
    session_id: SessionId,
    body: Annotated[SessionGenerateIn, Body()],
    ctx: SessionContextDep,
    owner: OwnerDep,
) -> SessionGenerateOut:
    """Continue the state by `length` characters (the decode batch, beside every other generation);
    the session's state becomes the state after them. The same state and `random_seed` give the same
    text as `/generate` with everything the session consumed as its prompt."""
    return await service.generate(ctx, owner, session_id, body)


@router.post("/{session_id}/fork", response_model=SessionOut, status_code=201, responses=error_responses(404))
async def fork(
    session_id: SessionId,
    body: Annotated[ForkIn, Body()],
    ctx: SessionContextDep,
    owner: OwnerDep,
) -> SessionOut:
    """A new session with a copy of this one's state and pending clamps (429 past the cap)."""
    return await service.fork(ctx, owner, session_id)


@router.post("/{session_id}/clamp", response_model=SessionOut, responses=error_responses(404, 409))
async def clamp(
    session_id: SessionId,
    body: Annotated[ClampIn, Body()],
    ctx: SessionContextDep,
    owner: OwnerDep,
) -> SessionOut:
    """Hold cell unit c[layer][unit] at `value`: set now, and again after each of the next `steps`
    characters consumed (appended or generated), so every step that reads one starts from it. A new
    clamp of the same unit replaces the pending one. 422 names `layer` or `unit` outside the model."""
    return await service.clamp(ctx, owner, session_id, body)
