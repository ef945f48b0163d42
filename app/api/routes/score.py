"""Scoring text: per-character log-probabilities and bits per character (one forward pass)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from app.api.deps import CacheDep, SessionsDep
from app.api.openapi import error_responses
from app.schemas.scoring import ScoreIn, ScoreOut
from app.services import scoring

router = APIRouter(tags=["generate"])


@router.post("/score", response_model=ScoreOut, responses=error_responses(404, 409))
async def score_text(body: Annotated[ScoreIn, Body()], sessions: SessionsDep, cache: CacheDep) -> ScoreOut:
    """How probable each character of `text` is after the ones before it, under a text model: the
    log-probability (natural log), the entropy of the model's distribution there, the `top_logprobs`
    likeliest characters, and `bits_per_character` over every character but the first (which has no
    context). 422 names characters outside the model's vocabulary; 409 for a palindrome model."""
    return await scoring.score(sessions, cache, body)
