"""Sampling from trained models. Plain `def` routes: FastAPI runs them in its threadpool, so
CPU-bound generation never blocks the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CacheDep, SessionDep
from app.api.openapi import error_responses
from app.schemas import GenerateOut, GenerateParams, GenerateQuery, PredictIn, PredictOut
from app.services import generation

router = APIRouter(tags=["generate"])


@router.get("/generate", response_model=GenerateOut, responses=error_responses(404, 409))
def generate_get(
    params: Annotated[GenerateQuery, Query()], session: SessionDep, cache: CacheDep
) -> GenerateOut:
    """Continue `seed` by `length` characters with a text model (by `checkpoint_id` or `job_id`)."""
    return generation.generate(session, cache, params)


@router.post("/generate", response_model=GenerateOut, responses=error_responses(404, 409))
def generate_post(params: GenerateParams, session: SessionDep, cache: CacheDep) -> GenerateOut:
    return generation.generate(session, cache, params, source="body")


@router.post("/predict", response_model=PredictOut, responses=error_responses(404, 409))
def predict(body: PredictIn, session: SessionDep, cache: CacheDep) -> PredictOut:
    """Predict the last digit of a palindrome with a palindrome model."""
    return generation.predict(session, cache, body)
