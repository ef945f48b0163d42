"""Text generation and palindrome prediction from stored checkpoints.

Generation is served by the checkpoint's decode engine (app/generation): these coroutines resolve
the checkpoint, make sure it is loaded, hand the request to the engine and await its characters,
so a waiting request holds no server thread. Blocking work (database reads, loading, prediction)
runs in threads.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.core.errors import InvalidInput, WrongTask
from app.generation import sse
from app.generation.cache import LoadedModel, ModelCache
from app.generation.handle import GenerationHandle, GenerationRequest
from app.observability import observe_generation, observe_latency
from app.schemas.generation import (
    Choice,
    GenerateOut,
    GenerateParams,
    PredictIn,
    PredictOut,
    TextLogprobs,
    Timings,
)
from app.services import checkpoints, model_registry
from models.decode.limits import MAX_RANDOM_SEED

Sessions = sessionmaker[Session]


def choice_seed(random_seed: int, index: int) -> int:
    """Continuation `index` of `n` draws from random_seed + index (mod 2**64): the first is what the
    same request with n = 1 gives, and any one of them can be reproduced alone."""
    return (random_seed + index) % (MAX_RANDOM_SEED + 1)


@dataclass(frozen=True)
class Started:
    """A generation the engine accepted (one handle per continuation): what the response reports
    besides the text."""

    checkpoint_id: int
    prompt: str
    handles: list[GenerationHandle]
    started_at: float
    model_name: str = ""  # the registered name it came by, for the per-model metrics

    def timings(self) -> Timings:
        """load_ms: resolving and loading the checkpoint; generate_ms: from the engine's waiting line
        to the last character (time waiting for a slot included)."""
        submitted_at, finished_at = self.handles[0].submitted_at, finished_at_of(self.handles)
        return Timings.between(self.started_at, submitted_at, finished_at)

    def observe(self) -> None:
        observe_handles(self.handles, self.started_at, self.model_name)

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()


def finished_at_of(handles: list[GenerationHandle]) -> float:
    """When the last of a request's continuations ended (now, if one has not)."""
    ends = [h.finished_at for h in handles]
    return max(e for e in ends if e is not None) if all(e is not None for e in ends) else perf_counter()


def observe_handles(handles: list[GenerationHandle], started_at: float, model_name: str) -> None:
    """Record a finished request's characters, speed, time to first character and wait for a slot."""
    observe_generation(sum(h.produced for h in handles), finished_at_of(handles) - handles[0].submitted_at)
    for handle in handles:
        observe_latency(
            model_name,
            first_char_s=None if handle.first_char_at is None else handle.first_char_at - started_at,
            queued_s=None if handle.joined_at is None else handle.joined_at - handle.submitted_at,
        )


def text_logprobs(handle: GenerationHandle, text: str, start: int = 0) -> TextLogprobs:
    """The log-probabilities of `text`, the handle's characters from `start` on (a stop string may have
    cut the text short of what was produced: the text is always a prefix)."""
    token_logprobs, top_logprobs = handle.logprobs_of(start, len(text))
    return TextLogprobs(tokens=list(text), token_logprobs=token_logprobs, top_logprobs=top_logprobs)


def model_name_of(reference: str | None) -> str:
    """`tales@champion` -> `tales`: metrics are labelled by name, not by every alias and version."""
    return "" if reference is None else model_registry.parse_ref(reference)[0]


async def generate(
    sessions: Sessions, cache: ModelCache, params: GenerateParams, *, source: str = "query"
) -> GenerateOut:
    """`source` ("query" or "body") is where the parameters came from, for error locations."""
    started = await start(sessions, cache, params, source=source, streaming=False)
    try:
        texts = await asyncio.gather(*(handle.text() for handle in started.handles))
    finally:
        started.cancel()  # the request was cancelled while it waited: free the slots
    started.observe()
    choices = [
        Choice(
            index=i,
            text=text,
            finish_reason=handle.ended_by,
            stop_reason=handle.stop_reason,
            random_seed=handle.stream.random_seed,
            logprobs=text_logprobs(handle, text) if params.logprobs else None,
        )
        for i, (handle, text) in enumerate(zip(started.handles, texts, strict=True))
    ]
    first = choices[0]
    return GenerateOut(
        text=first.text,
        checkpoint_id=started.checkpoint_id,
        prompt=started.prompt,
        seed=started.prompt,
        length=params.length,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        random_seed=first.random_seed,
        finish_reason=first.finish_reason,
        stop_reason=first.stop_reason,
        choices=choices,
        timings=started.timings(),
    )


async def events(started: Started) -> AsyncGenerator[bytes]:
    """The SSE body of a started generation (see app/generation/sse.py for the events)."""

    def last(handle: GenerationHandle) -> dict[str, Any]:
        return {
            "checkpoint_id": started.checkpoint_id,
            "random_seed": handle.stream.random_seed,
            "timings": started.timings().model_dump(),
        }

    try:
        async for event in sse.events(started.handles, last):
            yield event
    finally:
        started.observe()


async def start(
    sessions: Sessions, cache: ModelCache, params: GenerateParams, *, source: str, streaming: bool
) -> Started:
    """Resolve and load the checkpoint, check the request against it, queue it in its engine.

    Everything that can be refused is refused here, before a streamed response has started:
    unknown checkpoint (404), palindrome model (409), unknown prompt characters (422), full line (429).
    """
    from models.data import UnknownCharacters
    from models.decode.stream import Stream

    started_at = perf_counter()
    loaded = await loaded_model(
        sessions,
        cache,
        checkpoint_id=params.checkpoint_id,
        job_id=params.job_id,
        model=params.model,
        source=source,
    )
    if loaded.engine is None:
        raise WrongTask(
            f"checkpoint {loaded.checkpoint_id} is a {loaded.task} model: "
            "this model predicts digits; use POST /predict"
        )
    prompt = params.prompt_text
    missing = loaded.vocab.missing(prompt)
    if missing:
        raise InvalidInput((source, params.prompt_field), str(UnknownCharacters(missing)))
    random_seed = secrets.randbits(32) if params.random_seed is None else params.random_seed
    requests = [
        GenerationRequest(
            Stream(
                prompt,
                params.length,
                choice_seed(random_seed, i),
                params.temperature,
                params.top_k,
                params.top_p,
                logprobs=params.logprobs,
                repetition_penalty=params.repetition_penalty,
                presence_penalty=params.presence_penalty,
                frequency_penalty=params.frequency_penalty,
                no_repeat_ngram_size=params.no_repeat_ngram_size,
                penalty_window=params.penalty_window,
            ),
            streaming=streaming,
            stops=tuple(params.stop),
            min_length=params.min_length,
            include_stop=params.include_stop_str_in_output,
        )
        for i in range(params.n)
    ]
    handles = loaded.engine.submit_all(requests)
    return Started(loaded.checkpoint_id, prompt, handles, started_at, model_name_of(params.model))


async def predict(sessions: Sessions, cache: ModelCache, body: PredictIn) -> PredictOut:
    from models.sample import predict_palindrome

    loaded = await loaded_model(
        sessions, cache, checkpoint_id=body.checkpoint_id, job_id=body.job_id, model=body.model
    )
    if loaded.task != "palindrome":
        raise WrongTask(f"checkpoint {loaded.checkpoint_id} is a {loaded.task} model; use GET /generate")
    expected = loaded.train_config["input_length"]
    if len(body.digits) != expected:
        raise InvalidInput(("body", "digits"), f"this model reads {expected} digits, got {len(body.digits)}")
    digit, probabilities = await run_in_threadpool(
        predict_palindrome, loaded.model, body.digits, loaded.train_config["input_encoding"]
    )
    return PredictOut(
        checkpoint_id=loaded.checkpoint_id,
        digits=body.digits,
        predicted_digit=digit,
        probabilities=probabilities,
    )


async def loaded_model(
    sessions: Sessions,
    cache: ModelCache,
    *,
    checkpoint_id: int | None,
    job_id: int | None,
    model: str | None = None,
    source: str = "body",
) -> LoadedModel:
    """The loaded checkpoint a (checkpoint_id | job_id | model) reference names. A loaded checkpoint_id
    needs no database; a job_id or a model name does (what they name moves: a job trains on, an alias
    is moved), so each request resolves them anew and streams already running keep their checkpoint."""
    if checkpoint_id is None or checkpoint_id not in cache:

        def resolve() -> int:
            with sessions() as session:
                return checkpoints.resolve(
                    session, checkpoint_id=checkpoint_id, job_id=job_id, model=model, source=source
                )

        checkpoint_id = await run_in_threadpool(resolve)

    def read(checkpoint_id: int = checkpoint_id) -> dict[str, Any]:
        from models.checkpoint import from_bytes

        with sessions() as session:
            data = checkpoints.get_checkpoint(session, checkpoint_id, with_data=True).data
        return from_bytes(data)

    return await cache.get(checkpoint_id, read)
