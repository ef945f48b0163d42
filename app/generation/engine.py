"""Continuous batching at character granularity: one scheduler thread per loaded text checkpoint.

The thread steps every active stream of its checkpoint together (`models.decode.DecodeBatch`), one
character per stream per step. Between two steps, cancelled streams leave and waiting requests join
(their seed text is primed then, in this thread), so a request never waits for another one to
finish, only for the current step (TGI's and vLLM's continuous batching, with a step of one
character instead of one token).

Requests come from the asyncio event loop and results go back to it: `Engine.submit` (event loop)
puts an `Output` in the waiting line; the thread appends characters to it and wakes its reader with
`loop.call_soon_threadsafe`, so no server thread is held while a request waits. The stepping never
runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Literal

from app.errors import GenerationBusy
from app.observability.metrics import ACTIVE_STREAMS, BATCH_SIZE, WAITING_REQUESTS

if TYPE_CHECKING:  # torch is imported when the first checkpoint loads, not with the app
    from models.data import Vocabulary
    from models.decode import FusedCharLSTM, Stream

log = logging.getLogger(__name__)

FinishReason = Literal["length", "cancelled", "error"]
# An idle scheduler thread exits after this long; the next request starts a new one.
IDLE_EXIT_S = 30.0
# What a 429 tells the client: one short generation's time, after which slots have usually freed.
RETRY_AFTER_S = 1


class Output:
    """One request's characters as the engine produces them (written by the engine thread, read on
    the event loop). `chunks()` yields what arrived since the last chunk, so a slow reader gets
    bigger chunks instead of a growing backlog of tiny ones."""

    def __init__(self, stream: Stream, loop: asyncio.AbstractEventLoop, *, wake_per_chunk: bool) -> None:
        self.stream = stream
        self.submitted_at = perf_counter()
        self.finished_at: float | None = None
        self.finish_reason: FinishReason | None = None
        self.error: BaseException | None = None
        self.produced = 0  # characters so far; only the engine thread writes it
        self._loop = loop
        # Only a streaming reader wants each chunk; a whole-text reader is woken once, at the end.
        self._wake_per_chunk = wake_per_chunk
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._woken = asyncio.Event()
        self._wake_scheduled = False
        # A streaming reader is woken at most once per interval, and at once for its first characters
        # and its end: an event per character would cost the event loop more than the step made them.
        self._wake_interval = 0.0  # set by Engine.submit
        self._last_wake = -math.inf
        self._cancel: Callable[[Output], None] | None = None  # set by Engine.submit

    # -- engine thread

    def _push(self, chars: str, finish_reason: FinishReason | None = None) -> None:
        with self._lock:
            self._pending.append(chars)
            if finish_reason is not None:
                self.finish_reason = finish_reason
                self.finished_at = perf_counter()
            wake = finish_reason is not None
            if self._wake_per_chunk and not wake:
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

    def _push_char(self, char: str) -> None:
        """One character that is not the last: a whole-text reader reads nothing before the finishing
        `_push`, whose lock publishes this append too, so it needs neither the lock nor a wake."""
        if self._wake_per_chunk:
            self._push(char)
        else:
            self._pending.append(char)

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self._push("", "error")

    # -- event loop

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    async def chunks(self) -> AsyncIterator[str]:
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
        return "".join([chunk async for chunk in self.chunks()])

    def cancel(self) -> None:
        """Give the slot back (the reader went away); the engine drops the stream before its next step."""
        if self._cancel is not None and not self.done:
            self._cancel(self)


class Engine:
    """The scheduler of one text checkpoint: a waiting line, a batch of at most `max_batch` streams
    and a thread that steps it while there is work (it sleeps when idle, exits after IDLE_EXIT_S).

    `close()` (the cache evicted it) lets the streams it has, active and waiting, finish first.
    """

    def __init__(
        self,
        checkpoint_id: int,
        weights: FusedCharLSTM,
        vocab: Vocabulary,
        *,
        max_batch: int,
        max_waiting: int,
        stream_interval_s: float = 0.0,
        native: bool | None = None,
    ) -> None:
        from models.decode import DecodeBatch

        self.checkpoint_id = checkpoint_id
        self.vocab = vocab
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.stream_interval_s = stream_interval_s  # the least time between two events of a stream
        # native: DecodeBatch's choice of step (None: the C++ one when built, on CPU; False: PyTorch).
        self._batch = DecodeBatch(weights, vocab, max_batch, native=native)
        log.info(
            "checkpoint %s: decode engine with the %s step",
            checkpoint_id,
            "native" if self._batch.native else "PyTorch",
        )
        self._cond = threading.Condition()
        # Under _cond: requests not yet in the batch, cancellations to apply, admitted requests.
        self._waiting: deque[Output] = deque()
        self._cancelled: list[Output] = []
        self._admitted = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._slots: dict[int, Output] = {}  # the engine thread's alone: batch slot -> its request

    @property
    def native(self) -> bool:
        """Whether the batch steps with the native (C++) step rather than PyTorch ops."""
        return self._batch.native

    @property
    def active(self) -> int:
        """Streams in the batch now."""
        return len(self._batch)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def submit(self, output: Output) -> None:
        """Queue a request; it joins the batch at the next step. GenerationBusy when the line is full."""
        if output.stream.length == 0:  # nothing to generate: no slot, no step
            output._push("", "length")
            return
        with self._cond:
            if self._admitted >= self.max_batch + self.max_waiting:
                raise GenerationBusy(self.checkpoint_id, RETRY_AFTER_S)
            self._admitted += 1
            output._cancel = self._request_cancel
            output._wake_interval = self.stream_interval_s
            self._waiting.append(output)
            WAITING_REQUESTS.inc()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"engine-{self.checkpoint_id}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _request_cancel(self, output: Output) -> None:
        with self._cond:
            self._cancelled.append(output)
            self._cond.notify()

    # -- the engine thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._waiting or self._cancelled or self._slots):
                    if self._closed or not self._cond.wait(IDLE_EXIT_S):
                        self._thread = None
                        return
                cancelled, self._cancelled = self._cancelled, []
                for output in cancelled:
                    if output in self._waiting:
                        self._waiting.remove(output)
                        WAITING_REQUESTS.dec()
                        self._admitted -= 1
                joining: list[Output] = []
                while self._waiting and len(self._slots) + len(joining) < self.max_batch:
                    joining.append(self._waiting.popleft())
                    WAITING_REQUESTS.dec()
            try:
                self._cancel_active(cancelled)
                self._join(joining)
                self._step()
            except Exception as exc:  # a bug, not a request's fault: fail this batch, keep serving
                log.exception("generation engine of checkpoint %s failed", self.checkpoint_id)
                self._fail_all(exc)

    def _cancel_active(self, cancelled: list[Output]) -> None:
        for output in cancelled:
            for slot, active in self._slots.items():
                if active is output:
                    self._batch.remove(slot)
                    self._leave(slot, "cancelled")
                    break

    def _join(self, joining: list[Output]) -> None:
        for output in joining:
            try:
                slot = self._batch.add(output.stream)  # primes the seed text
            except Exception as exc:  # e.g. a seed character the service did not catch
                with self._cond:
                    self._admitted -= 1
                output._fail(exc)
                continue
            self._slots[slot] = output
            ACTIVE_STREAMS.inc()

    def _step(self) -> None:
        if not self._slots:
            return
        BATCH_SIZE.observe(len(self._slots))
        chars, slots = self.vocab.chars, self._slots
        for slot, next_id in self._batch.step().items():
            output = slots[slot]
            output.produced += 1
            if output.produced == output.stream.length:  # the batch let it go after this character
                output._push(chars[next_id], "length")
                self._leave(slot, None)
            else:
                output._push_char(chars[next_id])

    def _leave(self, slot: int, finish_reason: FinishReason | None) -> None:
        output = self._slots.pop(slot)
        ACTIVE_STREAMS.dec()
        with self._cond:
            self._admitted -= 1
        if finish_reason is not None:
            output._push("", finish_reason)

    def _fail_all(self, error: Exception) -> None:
        for slot in list(self._slots):
            if slot in self._batch:
                self._batch.remove(slot)
            output = self._slots.pop(slot)
            ACTIVE_STREAMS.dec()
            with self._cond:
                self._admitted -= 1
            output._fail(error)
