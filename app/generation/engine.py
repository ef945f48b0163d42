"""Continuous batching at character granularity: one engine thread per loaded text checkpoint.

The thread steps every active stream of its checkpoint together (`models.decode.batch.DecodeBatch`),
one character per stream per step. Between two steps, cancelled streams leave and waiting requests
join (their seed text is primed then, in this thread), so a request never waits for another one to
finish, only for the current step (TGI's and vLLM's continuous batching, with a step of one character
instead of one token). Who joins and who leaves is the `Scheduler`'s decision; the engine only hands
requests from the event loop to its thread, under a lock, and runs the steps.

`Engine.submit` (on the event loop) returns a `GenerationHandle`, which the thread fills and whose
reader it wakes with `loop.call_soon_threadsafe`. The stepping never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from app.core.errors import GenerationBusy
from app.generation.handle import GenerationHandle, GenerationRequest
from app.generation.scheduler import Scheduler
from app.observability.metrics import BATCH_SIZE

if TYPE_CHECKING:  # torch is imported when the first checkpoint loads, not with the app
    from models.data import Vocabulary
    from models.decode.fused import FusedCharLSTM

log = logging.getLogger(__name__)

# An idle engine thread exits after this long; the next request starts a new one.
IDLE_EXIT_S = 30.0
# What a 429 tells the client: one short generation's time, after which slots have usually freed.
RETRY_AFTER_S = 1


class Engine:
    """The decode engine of one text checkpoint: a batch of at most `max_batch` streams, at most
    `max_waiting` more requests in line, and a thread that steps the batch while there is work (it
    sleeps when idle, exits after IDLE_EXIT_S).

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
        from models.decode.batch import DecodeBatch

        self.checkpoint_id = checkpoint_id
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.stream_interval_s = stream_interval_s  # the least time between two events of a stream
        # native: DecodeBatch's choice of step (None: the C++ one when built, on CPU; False: PyTorch).
        self._batch = DecodeBatch(weights, vocab, max_batch, native=native)
        log.info(
            "checkpoint %s: decode engine with the %s step",
            checkpoint_id,
            "native" if self._batch.native else "PyTorch",
        )
        self._scheduler = Scheduler(self._batch)  # the engine thread's alone
        self._cond = threading.Condition()
        # Under _cond: requests and cancellations for the thread to hand to the scheduler, the
        # requests admitted and not yet gone (the 429 limit), and whether the cache let go of it.
        self._arrived: list[GenerationHandle] = []
        self._cancelled: list[GenerationHandle] = []
        self._admitted = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def native(self) -> bool:
        """Whether the batch steps with the native (C++) step rather than PyTorch ops."""
        return self._batch.native

    @property
    def weights(self) -> FusedCharLSTM:
        """The rearranged weights the batch steps with: sessions prime and feed text with them."""
        return self._batch.weights

    @property
    def active(self) -> int:
        """Streams in the batch now."""
        return len(self._batch)

    @property
    def waiting(self) -> int:
        """Requests admitted that have not joined the batch yet."""
        with self._cond:
            return len(self._arrived) + self._scheduler.waiting

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        """Queue a request (on the event loop); it joins the batch at the next step. GenerationBusy when
        the batch and the line are full."""
        return self.submit_all([request])[0]

    def submit_all(self, requests: list[GenerationRequest]) -> list[GenerationHandle]:
        """Queue several requests (the `n` continuations of one prompt) all or none: GenerationBusy
        unless the batch and the line have room for every one."""
        loop = asyncio.get_running_loop()
        handles = [
            GenerationHandle(r, loop, wake_interval_s=self.stream_interval_s, cancel=self._request_cancel)
            for r in requests
        ]
        queued = []
        for handle in handles:
            if handle.stream.length == 0:  # nothing to generate: no slot, no step
                handle.finish("length")
            else:
                queued.append(handle)
        if not queued:
            return handles
        with self._cond:
            if self._admitted + len(queued) > self.max_batch + self.max_waiting:
                raise GenerationBusy(self.checkpoint_id, RETRY_AFTER_S)
            self._admitted += len(queued)
            self._arrived.extend(queued)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"engine-{self.checkpoint_id}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handles

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _request_cancel(self, handle: GenerationHandle) -> None:
        with self._cond:
            self._cancelled.append(handle)
            self._cond.notify()

    # -- the engine thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._arrived or self._cancelled or self._scheduler.has_work):
                    if self._closed or not self._cond.wait(IDLE_EXIT_S):
                        self._thread = None
                        return
                arrived, self._arrived = self._arrived, []
                cancelled, self._cancelled = self._cancelled, []
            left = self._step(arrived, cancelled)
            if left:
                with self._cond:
                    self._admitted -= left

    def _step(self, arrived: list[GenerationHandle], cancelled: list[GenerationHandle]) -> int:
        """One step (see app/generation/scheduler.py): how many requests left the engine."""
        scheduler, left = self._scheduler, 0
        try:
            for handle in arrived:  # before the cancellations: one may cancel a request just arrived
                scheduler.add(handle)
            left += sum(scheduler.cancel(handle) for handle in cancelled)
            left += len(scheduler.schedule())
            if scheduler.active:
                BATCH_SIZE.observe(scheduler.active)
                left += len(scheduler.update_from_output(self._batch.step()))
        except (
            Exception
        ) as exc:  # a bug or a broken model, not a request's fault: fail this batch, keep serving
            log.exception("generation engine of checkpoint %s failed", self.checkpoint_id)
            left += len(scheduler.fail_all(exc))
        return left
