"""Calls that arrive together, run together: one thread takes every call waiting and runs them as one
group (one database transaction, one query), then answers each caller.

Why a thread of its own rather than one per call (`run_in_threadpool`): at 32 concurrent requests each
hop into a pool thread and back waited for the GIL behind the event loop and the engine thread (up to
the 5 ms switch interval, per hop); a group makes one hop for all of them, and an awaiting request
holds no thread at all. The thread starts with the first call and exits when idle (as the generation
engine's does).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The thread exits after this long without a call; the next call starts a new one.
IDLE_EXIT_S = 30.0


@dataclass(eq=False)
class _Call(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop | None  # an awaiting caller's; None: a blocked thread's
    future: asyncio.Future[R] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    outcome: R | BaseException | None = None


class Grouped(Generic[T, R]):
    """`run(items)` gives one outcome per item, in order: its result, or the exception its caller gets.
    An exception out of `run` itself is every item's."""

    def __init__(self, name: str, run: Callable[[Sequence[T]], list[R | BaseException]]) -> None:
        self._name, self._run = name, run
        self._cond = threading.Condition()
        self._waiting: list[_Call[T, R]] = []
        self._thread: threading.Thread | None = None
        # Per event loop, the calls made in its current turn (touched only on that loop's thread).
        self._this_turn: dict[asyncio.AbstractEventLoop, list[_Call[T, R]]] = {}

    async def __call__(self, item: T) -> R:
        """`item`'s outcome, awaited on the event loop (no thread held while it waits). The calls made
        in one turn of the loop are handed to the thread together, at its end: requests that a step of
        the decode batch finished together arrive together, and a thread woken at the first of them
        would take it alone (at 32 clients most groups were of one, each a wake-up and a GIL hand-off)."""
        loop = asyncio.get_running_loop()
        call: _Call[T, R] = _Call(item, loop, loop.create_future())
        held = self._this_turn.setdefault(loop, [])
        if not held:
            loop.call_soon(self._end_of_turn, loop)
        held.append(call)
        assert call.future is not None
        # A caller that goes away cancels only its future: the call runs with its group all the same
        # (a write is still committed), and its answer is dropped.
        return await call.future

    def call(self, item: T) -> R:
        """`item`'s outcome, blocking the calling thread (tests, and callers that are threads already)."""
        call: _Call[T, R] = _Call(item, None)
        self._submit(call)
        call.done.wait()
        outcome = call.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]  # R, set before `done`

    def _end_of_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._submit(*self._this_turn.pop(loop))

    def _submit(self, *calls: _Call[T, R]) -> None:
        with self._cond:
            self._waiting.extend(calls)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    if not self._cond.wait(IDLE_EXIT_S) and not self._waiting:
                        self._thread = None
                        return
                group, self._waiting = self._waiting, []
            self._answer(group, self._outcomes(group))

    def _outcomes(self, group: list[_Call[T, R]]) -> list[R | BaseException]:
        try:
            outcomes = self._run([call.item for call in group])
        except Exception as exc:  # e.g. the database is unreachable: every call in the group fails
            return [exc] * len(group)
        if len(outcomes) != len(group):
            error = RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(group)} calls")
            return [error] * len(group)
        return outcomes

    @staticmethod
    def _answer(group: list[_Call[T, R]], outcomes: list[R | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call[T, R], R | BaseException]]] = {}
        for call, outcome in zip(group, outcomes, strict=True):
            call.outcome = outcome
            if call.loop is None:
                call.done.set()
            else:
                by_loop.setdefault(call.loop, []).append((call, outcome))
        for loop, answers in by_loop.items():  # one wake-up per event loop, not one per call
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is left to answer
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[_Call[T, R], R | BaseException]]) -> None:
    for call, outcome in answers:
        future = call.future
        assert future is not None
        if future.done():  # cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
