"""A generation request and the handle `Engine.submit` gives back for it.

The service builds a `GenerationRequest` and gets a `GenerationHandle`: it awaits the characters on
the event loop (`async for chunk in handle`, or `await handle.text()`) and calls `cancel()` when its
reader goes away. The engine thread writes into the same handle (`append`, `finish`, `fail`) and wakes
its reader with `loop.call_soon_threadsafe`, so no server thread is held while a request waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Literal

from models.decode.stops import StopMatcher

if TYPE_CHECKING:  # torch is imported when the first checkpoint loads, not with the app
    import torch

    from models.decode.state import StartState
    from models.decode.stream import Stream

FinishReason = Literal["length", "stop", "cancelled", "error"]


@dataclass(frozen=True)
class GenerationRequest:
    """What the service asks an engine for."""

    stream: Stream  # the seed text, length, random seed and sampling settings
    # True: the reader takes each chunk as it comes (server-sent events); False: the whole text at the
    # end, so it is woken once.
    streaming: bool = False
    # Stop strings (models/decode/stops.py): the text ends before the first match that leaves at least
    # `min_length` characters (through it with `include_stop`).
    stops: tuple[str, ...] = ()
    min_length: int = 0
    include_stop: bool = False
    # A session's state (models/decode/state.py): the stream continues it instead of priming a seed
    # text, and its clamps are held; `keep_state`: the handle's `final_state` is the state after the
    # last character produced.
    start: StartState | None = None
    keep_state: bool = False


class GenerationHandle:
    """One submitted request's characters as the engine produces them (written by the engine thread,
    read on the event loop). Iterating yields what arrived since the last chunk, so a slow reader gets
    bigger chunks instead of a growing backlog of tiny ones."""

    def __init__(
        self,
        request: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        *,
        wake_interval_s: float,
        cancel: Callable[[GenerationHandle], None],
    ) -> None:
        self.request = request
        self.submitted_at = perf_counter()
        self.joined_at: float | None = None  # when it took a slot in the batch
        self.first_char_at: float | None = None
        self.finished_at: float | None = None
        self.finish_reason: FinishReason | None = None
        self.error: BaseException | None = None
        self.stop_reason: str | None = None  # the stop string that ended the text
        # With `stream.logprobs`: per produced character, (its log-probability, the likeliest
        # characters'); appended by the engine thread before the character itself is released.
        self.logprobs: list[tuple[float, dict[str, float]]] = []
        self.produced = 0  # characters so far; only the engine thread writes it
        # With `request.keep_state`: h | c after the last character produced, set by the engine thread
        # before `finish` (whose lock publishes it to the reader).
        self.final_state: torch.Tensor | None = None
        self._stops = (
            StopMatcher(request.stops, min_length=request.min_length, include_stop=request.include_stop)
            if request.stops
            else None
        )
        self._loop = loop
        self._cancel = cancel
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._woken = asyncio.Event()
        self._wake_scheduled = False
        # A streaming reader is woken at most once per interval, and at once for its first characters
        # and its end: an event per character would cost the event loop more than the step made them.
        self._wake_interval = wake_interval_s
        self._last_wake = -math.inf

    @property
    def stream(self) -> Stream:
        return self.request.stream

    # -- the engine thread

    def append(self, char: str, logprobs: tuple[float, dict[str, float]] | None = None) -> bool:
        """One more character (with its log-probabilities when the stream asked); True when a stop
        string ended the text with it (the handle is finished). Without stops a whole-text reader reads
        nothing before `finish`, whose lock publishes this append too, so it needs neither the lock nor
        a wake."""
        if logprobs is not None:
            self.logprobs.append(logprobs)
        self.produced += 1
        if self.produced == 1:
            self.first_char_at = perf_counter()
        if self._stops is not None:
            char = self._stops.push(char)
            if self._stops.fired is not None:
                self.stop_reason = self._stops.fired
                self._push(char, "stop")
                return True
            if not char:  # held back: it may be the start of a stop
                return False
        if self.request.streaming:
            self._push(char)
        else:
            self._pending.append(char)
        return False

    def logprobs_of(self, start: int, count: int) -> tuple[list[float], list[dict[str, float]]]:
        """(log-probabilities, likeliest alternatives) of `count` characters from `start` on. The text
        shown is always a prefix of what was produced (a stop only cuts), so offsets into it are offsets
        here; each entry is appended before its character is released, so a released one has its entry."""
        taken = self.logprobs[start : start + count]
        return [lp for lp, _ in taken], [top for _, top in taken]

    @property
    def ended_by(self) -> Literal["length", "stop"]:
        """The finish reason a response reports: a stop string, or else the length (a cancelled or
        failed request has no response to report it in)."""
        return "stop" if self.finish_reason == "stop" else "length"

    def joined(self) -> None:
        """It took a slot in the batch (the engine thread, at the scheduler's join)."""
        self.joined_at = perf_counter()

    def finish(self, reason: FinishReason) -> None:
        """The end (all `length` characters, or cancelled): whatever stops still held back goes out."""
        self._push(self._stops.flush() if self._stops is not None else "", reason)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._push("", "error")

    def _push(self, chars: str, finish_reason: FinishReason | None = None) -> None:
        with self._lock:
            self._pending.append(chars)
            if finish_reason is not None:
                self.finish_reason = finish_reason
                self.finished_at = perf_counter()
            wake = finish_reason is not None
            if self.request.streaming and not wake:
                now = perf_counter()
                wake = now - self._last_wake >= self._wake_interval
                if wake:
                    self._last_wake = now
            wake = wake and not self._wake_scheduled
            self._wake_scheduled = self._wake_scheduled or wake
        if wake:
            # RuntimeError: its event loop is closed, nobody is left to read; the stream ends as usual.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._woken.set)

    # -- the event loop

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    async def __aiter__(self) -> AsyncIterator[str]:
        """The characters as they come, in chunks; raises the engine's error if it failed."""
        while True:
            await self._woken.wait()
            with self._lock:
                self._woken.clear()
                self._wake_scheduled = False
                chunk, finished = "".join(self._pending), self.finish_reason is not None
                self._pending.clear()
            if chunk:
                yield chunk
            if finished:
                if self.error is not None:
                    raise self.error
                return

    async def text(self) -> str:
        """The whole text, once it is all there."""
        return "".join([chunk async for chunk in self])

    def cancel(self) -> None:
        """Give the slot back (the reader went away); the engine drops the stream before its next step."""
        if not self.done:
            self._cancel(self)
