"""Scoring a text with a text model: one forward pass in a server thread, beside the decode engines."""

from __future__ import annotations

from time import perf_counter

from starlette.concurrency import run_in_threadpool

from app.core.errors import InvalidInput, WrongTask
from app.generation.cache import ModelCache
from app.schemas.generation import Timings
from app.schemas.scoring import ScoreIn, ScoreOut
from app.services.generation import Sessions, loaded_model


async def score(sessions: Sessions, cache: ModelCache, body: ScoreIn) -> ScoreOut:
    """404 for an unknown model, 409 for a palindrome model, 422 naming characters outside the vocabulary."""
    from models.data import UnknownCharacters
    from models.score import score_text

    started = perf_counter()
    loaded = await loaded_model(
        sessions, cache, checkpoint_id=body.checkpoint_id, job_id=body.job_id, model=body.model
    )
    if loaded.task != "text":
        raise WrongTask(
            f"checkpoint {loaded.checkpoint_id} is a {loaded.task} model: it reads digits, not text; "
            "use POST /predict"
        )
    missing = loaded.vocab.missing(body.text)
    if missing:
        raise InvalidInput(("body", "text"), str(UnknownCharacters(missing)))
    loaded_at = perf_counter()
    scored = await run_in_threadpool(score_text, loaded.model, loaded.vocab, body.text, top=body.top_logprobs)
    done = perf_counter()
    return ScoreOut(
        checkpoint_id=loaded.checkpoint_id,
        tokens=scored.tokens,
        token_logprobs=scored.token_logprobs,
        entropies=scored.entropies,
        top_logprobs=scored.top_logprobs,
        total_logprob=scored.total_logprob,
        bits_per_character=scored.bits_per_character,
        timings=Timings.between(started, loaded_at, done),
    )
