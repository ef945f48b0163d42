"""`POST /v1/completions`: OpenAI's legacy completions protocol over the batching engine.

A request is `prompts x n` continuations, all submitted to the model's engine at once (all or none, so
a full engine is one 429); choice `i` (prompt `i // n`, continuation `i % n`) draws from `seed + i`
(mod 2**64), so a response is repeatable and any choice can be reproduced alone with n = 1. Lengths and
usage count characters. `echo` puts the prompt before the completion, and with `logprobs` scores it in
one forward pass (its first character has no context: null, as lm-evaluation-harness expects), so
`echo: true, max_tokens: 0, logprobs: k` scores a text without generating anything.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from uuid import uuid4

from starlette.concurrency import run_in_threadpool

from app.core.errors import InvalidInput, WrongTask
from app.generation import sse
from app.generation.cache import LoadedModel, ModelCache
from app.generation.handle import GenerationHandle, GenerationRequest
from app.schemas.openai import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    Usage,
)
from app.services.generation import (
    Sessions,
    choice_seed,
    loaded_model,
    model_name_of,
    observe_handles,
    text_logprobs,
)

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class StartedCompletion:
    """A completion the engine accepted: one handle per choice, and what every response chunk repeats."""

    request: CompletionRequest
    loaded: LoadedModel
    prompts: list[str]
    handles: list[GenerationHandle]
    id: str
    created: int
    started_at: float

    def observe(self) -> None:
        observe_handles(self.handles, self.started_at, model_name_of(self.request.model))

    def prompt_of(self, choice: int) -> str:
        return self.prompts[choice // self.request.n]


async def start(
    sessions: Sessions, cache: ModelCache, body: CompletionRequest, *, streaming: bool
) -> StartedCompletion:
    """Check, resolve and submit: every refusal (400, 404, 429) comes before a stream starts."""
    from models.data import UnknownCharacters
    from models.decode.stream import Stream

    started_at = perf_counter()
    if (refused := body.unhonourable()) is not None:
        raise InvalidInput(("body", refused[0]), refused[1])
    loaded = await loaded_model(sessions, cache, checkpoint_id=None, job_id=None, model=body.model)
    if loaded.engine is None:
        raise WrongTask(f"model: `{body.model}` is a {loaded.task} model; it completes no text")
    prompts = body.prompts()
    for prompt in prompts:
        if missing := loaded.vocab.missing(prompt):
            raise InvalidInput(("body", "prompt"), str(UnknownCharacters(missing)))
    seed = secrets.randbits(32) if body.seed is None else body.seed
    requests = [
        GenerationRequest(
            Stream(
                prompts[i // body.n],
                body.max_tokens,
                choice_seed(seed, i),
                body.temperature,
                # vLLM's and OpenAI's neutral values: no filter at all.
                top_k=body.top_k if body.top_k is not None and body.top_k > 0 else None,
                top_p=body.top_p if body.top_p < 1 else None,
                # OpenAI's logprobs 0 is the chosen character's alone: ask for one alternative, report none.
                logprobs=0 if body.logprobs is None else max(body.logprobs, 1),
                repetition_penalty=body.repetition_penalty,
                presence_penalty=body.presence_penalty,
                frequency_penalty=body.frequency_penalty,
                no_repeat_ngram_size=body.no_repeat_ngram_size,
                penalty_window=body.penalty_window,
            ),
            streaming=streaming,
            stops=tuple(body.stops()),
            min_length=body.min_tokens,
            include_stop=body.include_stop_str_in_output,
        )
        for i in range(len(prompts) * body.n)
    ]
    handles = loaded.engine.submit_all(requests)
    return StartedCompletion(
        body, loaded, prompts, handles, f"cmpl-{uuid4().hex}", int(time.time()), started_at
    )


async def complete(started: StartedCompletion) -> Completion:
    """The whole response, once every choice has all its characters."""
    texts = []
    try:
        for handle in started.handles:
            texts.append(await handle.text())
    finally:
        for handle in started.handles:
            handle.cancel()
    started.observe()
    choices = []
    for i, (handle, text) in enumerate(zip(started.handles, texts, strict=True)):
        prompt = started.prompt_of(i)
        shown = prompt + text if started.request.echo else text
        choices.append(
            CompletionChoice(
                text=shown,
                index=i,
                logprobs=await _logprobs(started, i, text),
                finish_reason=handle.ended_by,
                stop_reason=handle.stop_reason,
            )
        )
    return Completion(
        id=started.id,
        created=started.created,
        model=started.request.model,
        choices=choices,
        usage=_usage(started, [len(t) for t in texts]),
    )


async def events(started: StartedCompletion) -> AsyncGenerator[bytes]:
    """OpenAI's streamed chunks: the characters of every choice as they come (the prompt first, with
    `echo`), each choice's end with its `finish_reason`, the usage if asked, then `data: [DONE]`."""
    include_usage = (
        started.request.stream_options is not None and started.request.stream_options.include_usage
    )
    produced = [0] * len(started.handles)
    try:
        if started.request.echo:
            for i in range(len(started.handles)):
                yield _chunk(started, i, started.prompt_of(i), None, include_usage)
        async for i, chunk, _ in sse.merged(started.handles):
            handle = started.handles[i]
            if isinstance(chunk, Exception):
                error = {"message": str(chunk), "type": "server_error", "param": None, "code": None}
                yield sse.event({"error": error})
                return
            if chunk is None:
                yield _chunk(started, i, "", handle, include_usage)
            else:
                logprobs = None
                if started.request.logprobs is not None:
                    logprobs = _slice(started, i, produced[i], chunk).model_dump()
                produced[i] += len(chunk)
                yield _chunk(started, i, chunk, None, include_usage, logprobs)
        if include_usage:
            usage = _usage(started, produced)
            yield sse.event(_frame(started, []) | {"usage": usage.model_dump()})
        yield DONE
    finally:
        for handle in started.handles:
            handle.cancel()
        started.observe()


def _frame(started: StartedCompletion, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": started.id,
        "object": "text_completion",
        "created": started.created,
        "model": started.request.model,
        "choices": choices,
    }


def _chunk(
    started: StartedCompletion,
    index: int,
    text: str,
    finished: GenerationHandle | None,
    include_usage: bool,
    logprobs: dict[str, Any] | None = None,
) -> bytes:
    choice: dict[str, Any] = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": None}
    if finished is not None:
        choice |= {"finish_reason": finished.ended_by, "stop_reason": finished.stop_reason}
    frame = _frame(started, [choice])
    if include_usage:
        frame["usage"] = None  # OpenAI's: every chunk has the key, only the last one a value
    return sse.event(frame)


def _usage(started: StartedCompletion, completion_lengths: list[int]) -> Usage:
    prompt_chars = sum(len(p) for p in started.prompts)
    completion_chars = sum(completion_lengths)
    return Usage(
        prompt_tokens=prompt_chars,
        completion_tokens=completion_chars,
        total_tokens=prompt_chars + completion_chars,
    )


async def _logprobs(started: StartedCompletion, choice: int, text: str) -> CompletionLogprobs | None:
    """The legacy logprobs object over the choice's characters: the generated ones' as the engine
    reported them, and with `echo` the prompt's before them, scored in one forward pass (its first
    character has no context: null)."""
    from models.score import score_text

    k = started.request.logprobs
    if k is None:
        return None
    generated = _slice(started, choice, 0, text)
    if not started.request.echo:
        return generated
    prompt = started.prompt_of(choice)
    head = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    if prompt:
        scored = await run_in_threadpool(
            score_text, started.loaded.model, started.loaded.vocab, prompt, top=k
        )
        head = CompletionLogprobs(
            tokens=scored.tokens,
            token_logprobs=scored.token_logprobs,
            top_logprobs=scored.top_logprobs
            if k
            else [None if lp is None else {} for lp in scored.token_logprobs],
            text_offset=list(range(len(prompt))),
        )
    return CompletionLogprobs(
        tokens=head.tokens + generated.tokens,
        token_logprobs=head.token_logprobs + generated.token_logprobs,
        top_logprobs=head.top_logprobs + generated.top_logprobs,
        text_offset=head.text_offset + [len(prompt) + o for o in generated.text_offset],
    )


def _slice(started: StartedCompletion, choice: int, start: int, text: str) -> CompletionLogprobs:
    """The engine's log-probabilities of `text`, choice `choice`'s characters from `start` on."""
    k = started.request.logprobs or 0
    taken = text_logprobs(started.handles[choice], text, start)
    tops = taken.top_logprobs if k else [{} for _ in taken.tokens]  # logprobs 0: the chosen one's alone
    return CompletionLogprobs(
        tokens=taken.tokens,
        token_logprobs=taken.token_logprobs,
        top_logprobs=tops,
        text_offset=list(range(start, start + len(text))),
    )
