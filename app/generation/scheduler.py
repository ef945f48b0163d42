"""Who is in an engine's batch each step: the policy of continuous batching, with no threads and no
clock, so that tests drive it step by step (vLLM keeps its scheduler apart from its engine loop alike).

An engine step is three calls to three owners (see `Engine._step`):

    left = scheduler.schedule()                  joins: the waiting line fills free slots, in order
    ids = batch.step()                           the model: one character per active stream
    left += scheduler.update_from_output(ids)    the characters go out; finished streams leave

Between steps, `add` puts a request in the line and `cancel` takes one out of the line or the batch.
A request's slot is held from its join until it leaves: finished, cancelled, or failed. Every call
returns the requests that left, which the engine counts off its admission limit. A join that fails
(its seed text cannot be primed) fails that request alone; a step that fails fails every active one
(`fail_all`), and the engine goes on serving.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from app.generation.handle import GenerationHandle
from app.observability.metrics import ACTIVE_STREAMS, WAITING_REQUESTS

if TYPE_CHECKING:  # torch is imported when the first checkpoint loads, not with the app
    from models.decode.batch import DecodeBatch


class Scheduler:
    """A FIFO waiting line in front of `batch`, and which request holds each of its slots.

    Not thread-safe: one engine thread calls it (the engine's lock guards only what the event loop
    hands over).
    """

    def __init__(self, batch: DecodeBatch) -> None:
        self.batch = batch
        self._chars = batch.vocab.chars
        self._waiting: deque[GenerationHandle] = deque()
        self._active: dict[int, GenerationHandle] = {}  # batch slot -> its request

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def has_work(self) -> bool:
        return bool(self._waiting or self._active)

    def add(self, request: GenerationHandle) -> None:
        """Queue a request (length >= 1): it joins at a `schedule` with a free slot, in order."""
        self._waiting.append(request)
        WAITING_REQUESTS.inc()

    def cancel(self, request: GenerationHandle) -> bool:
        """Take a request out of the line or the batch (finish reason "cancelled"): whether it left.
        False when it is in neither (it finished or failed meanwhile)."""
        if request in self._waiting:
            self._waiting.remove(request)
            WAITING_REQUESTS.dec()
        else:
            slot = next((slot for slot, active in self._active.items() if active is request), None)
            if slot is None:
                return False
            self.batch.remove(slot)
            self._leave(slot)
        request.finish("cancelled")
        return True

    def schedule(self) -> list[GenerationHandle]:
        """Let waiting requests join while slots are free, in order; the ones whose join failed."""
        failed = []
        while self._waiting and not self.batch.is_full:
            request = self._waiting.popleft()
            WAITING_REQUESTS.dec()
            try:
                # Primes the seed text (or takes the start state); takes no slot if it fails.
                slot = self.batch.add(
                    request.stream, request.request.start, keep_state=request.request.keep_state
                )
            except Exception as exc:  # e.g. a seed character the service did not catch
                request.fail(exc)
                failed.append(request)
                continue
            self._active[slot] = request
            request.joined()
            ACTIVE_STREAMS.inc()
        return failed

    def update_from_output(self, ids: dict[int, int]) -> list[GenerationHandle]:
        """Hand each active request its character of the step; the ones that are over leave: a stop
        string ended their text, or they have all `length` characters (the batch let them go already)."""
        finished = []
        chars, logprobs = self._chars, self.batch.last_logprobs  # rows that asked for them, this step
        for slot, next_id in ids.items():
            request = self._active[slot]
            asked = logprobs.get(slot)
            reported = None if asked is None else (asked.logprob, {chars[i]: lp for i, lp in asked.top})
            stopped = request.append(chars[next_id], reported)
            if stopped or request.produced == request.stream.length:
                if request.request.keep_state and not stopped:  # before finish, which publishes it
                    request.final_state = self.batch.last_states[slot]
                if slot in self.batch:  # a stop before the last character: the batch still holds it
                    self.batch.remove(slot)
                self._leave(slot)
                if not stopped:
                    request.finish("length")
                finished.append(request)
        return finished

    def fail_all(self, error: BaseException) -> list[GenerationHandle]:
        """The step failed (a bug or a broken model, not one request's fault): every active request
        fails with `error` and leaves; the line stays, to join at the next `schedule`."""
        failed = []
        for slot in list(self._active):
            if slot in self.batch:
                self.batch.remove(slot)
            request = self._leave(slot)
            request.fail(error)
            failed.append(request)
        return failed

    def _leave(self, slot: int) -> GenerationHandle:
        ACTIVE_STREAMS.dec()
        return self._active.pop(slot)
