"""Server-sent events for `/generate/stream`: one `data:` line of JSON per event.

    data: {"text": "Once up", "index": 0}
    data: {"text": "on a", "index": 7}
    data: {"finish_reason": "length", "index": 11, "checkpoint_id": 3, "random_seed": 42, "timings": {...}}

`index` is the offset of the event's first character in the generated text (in the last event: the
text's length), so a client can tell that it missed nothing.
"""

from __future__ import annotations

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


async def events(handle: GenerationHandle, last: Callable[[], dict[str, Any]]) -> AsyncIterator[bytes]:
    """The chunks of `handle` as events, then `last()`'s fields with `finish_reason` and `index`.

    When the client goes away, Starlette cancels this generator: its slot goes back to the engine
    before the engine's next step. An engine failure mid-stream ends the stream with
    `finish_reason: "error"` and a `detail` (the status line was sent long ago).
    """
    index = 0
    try:
        try:
            async for chunk in handle:
                yield event({"text": chunk, "index": index})
                index += len(chunk)
        except Exception as exc:
            yield event({"finish_reason": "error", "index": index, "detail": str(exc)})
            return
        yield event({"finish_reason": handle.finish_reason, "index": index} | last())
    finally:
        handle.cancel()  # a no-op once the stream has finished
