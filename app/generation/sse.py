"""Server-sent events for `/generate/stream`: one `data:` line of JSON per event.

    data: {"text": "Once up", "index": 0}
    data: {"text": "on a", "index": 7}
    data: {"finish_reason": "length", "index": 11, "stop_reason": null, "checkpoint_id": 3, "random_seed": 42,
           "timings": {...}}

`index` is the offset of the event's first character in the generated text (in the last event: the
text's length), so a client can tell that it missed nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.generation.handle import GenerationHandle

MEDIA_TYPE = "text/event-stream"


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that closes its event generator as soon as the response ends.

    Starlette stops iterating when a send fails (the client went away) but leaves the generator
    suspended, to be closed whenever it is garbage-collected; closing it here runs its `finally`
    at once, which gives the stream's batch slot back.
    """

    media_type = MEDIA_TYPE

    def __init__(self, events: AsyncGenerator[bytes]) -> None:
        super().__init__(events)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()


def event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def events(
    handles: list[GenerationHandle], last: Callable[[GenerationHandle], dict[str, Any]]
) -> AsyncIterator[bytes]:
    """The chunks of every handle as events, then for each its end: `finish_reason` ("length" or
    "stop"), `stop_reason`, `index`, and `last(handle)`'s fields. With several handles (`n`), every
    event carries `choice`, the continuation's number, and the stream ends after the last one ends.

    When the client goes away, Starlette cancels this generator: its slots go back to the engine
    before the engine's next step. An engine failure mid-stream ends that continuation with
    `finish_reason: "error"` and a `detail` (the status line was sent long ago).
    """
    several = len(handles) > 1
    try:
        async for i, chunk, index in merged(handles):
            handle = handles[i]
            tag = {"choice": i} if several else {}
            if isinstance(chunk, Exception):
                yield event({"finish_reason": "error", "index": index, "detail": str(chunk)} | tag)
            elif chunk is None:
                end = {
                    "finish_reason": handle.finish_reason,
                    "index": index,
                    "stop_reason": handle.stop_reason,
                }
                yield event(end | tag | last(handle))
            else:
                chunk_event = {"text": chunk, "index": index} | tag
                if handle.stream.logprobs:
                    token_logprobs, top_logprobs = handle.logprobs_of(index, len(chunk))
                    chunk_event["logprobs"] = {"token_logprobs": token_logprobs, "top_logprobs": top_logprobs}
                yield event(chunk_event)
    finally:
        for handle in handles:
            handle.cancel()  # a no-op once the stream has finished


Item = tuple[int, str | Exception | None, int]


async def merged(handles: list[GenerationHandle]) -> AsyncIterator[Item]:
    """(handle number, chunk, the chunk's offset) as the chunks come from any handle; the chunk is None
    for a handle's end (offset: its length) and the exception for its failure."""
    if len(handles) == 1:  # the common case needs no tasks
        async for item in _numbered(0, handles[0]):
            yield item
        return
    queue: asyncio.Queue[Item] = asyncio.Queue()

    async def drain(i: int, handle: GenerationHandle) -> None:
        async for item in _numbered(i, handle):
            await queue.put(item)

    tasks = [asyncio.create_task(drain(i, h)) for i, h in enumerate(handles)]
    try:
        ended = 0
        while ended < len(handles):
            item = await queue.get()
            ended += not isinstance(item[1], str)
            yield item
    finally:
        for task in tasks:
            task.cancel()


async def _numbered(i: int, handle: GenerationHandle) -> AsyncIterator[Item]:
    """One handle's chunks with their offsets, then its end (None) or its failure (the exception)."""
    index = 0
    try:
        async for chunk in handle:
            yield i, chunk, index
            index += len(chunk)
    except Exception as exc:
        yield i, exc, index
        return
    yield i, None, index
