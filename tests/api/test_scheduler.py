"""The engine's scheduler driven step by step: no thread, no clock, a real (tiny) decode batch.

Each test makes the three calls of an engine step itself (`schedule`, the batch's `step`,
`update_from_output`, or `fail_all` when the step raises), as `Engine._step` does, and reads the
requests' handles on an event loop of its own once they are done.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest
import torch

from app.generation.handle import GenerationHandle, GenerationRequest
from app.generation.scheduler import Scheduler
from models.char_lstm import CharLSTM
from models.data import UnknownCharacters, Vocabulary
from models.decode.batch import DecodeBatch, decode
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream

VOCAB = Vocabulary("abcdefghij ")


def weights(*, broken: bool = False) -> FusedCharLSTM:
    """A small random CharLSTM; `broken`: NaN logits, so every sampled step fails."""
    torch.manual_seed(0)
    model = CharLSTM(len(VOCAB), embedding_size=4, hidden_size=8, num_layers=2).eval()
    if broken:
        with torch.no_grad():
            model.head.bias.fill_(math.nan)
    return FusedCharLSTM(model)


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def handle(loop: asyncio.AbstractEventLoop, stream: Stream) -> GenerationHandle:
    # Cancellation goes straight to the scheduler in these tests, not through the handle.
    return GenerationHandle(GenerationRequest(stream), loop, wake_interval_s=0.0, cancel=lambda _: None)


def step(scheduler: Scheduler) -> list[GenerationHandle]:
    """One engine step without its lock and thread: the requests that left."""
    left = scheduler.schedule()
    if scheduler.active:
        left += scheduler.update_from_output(scheduler.batch.step())
    return left


def text(loop: asyncio.AbstractEventLoop, request: GenerationHandle) -> str:
    assert request.done
    return loop.run_until_complete(request.text())


def alone(stream: Stream, fused: FusedCharLSTM) -> str:
    return decode(fused, VOCAB, [stream], capacity=1)[0]


def test_a_full_batch_makes_joiners_wait_first_come_first_served(loop) -> None:
    fused = weights()
    scheduler = Scheduler(DecodeBatch(fused, VOCAB, capacity=2))
    streams = [Stream("ab", 3, 1), Stream("cd", 5, 2), Stream("", 2, 3), Stream("j", 2, 4, temperature=0)]
    a, b, c, d = requests = [handle(loop, s) for s in streams]
    for request in requests:
        scheduler.add(request)
    assert scheduler.waiting == 4 and scheduler.active == 0
    joined_at: dict[int, int] = {}
    left_at: dict[int, int] = {}
    for t in range(8):
        left = step(scheduler)
        for i, request in enumerate(requests):
            if request.produced and i not in joined_at:  # a request's first character comes at its join
                joined_at[i] = t
        for request in left:
            left_at[requests.index(request)] = t
        assert scheduler.active <= 2
    # a and b join at once; c takes a's slot after a's 3 characters, d b's after b's 5 (not c's).
    assert joined_at == {0: 0, 1: 0, 2: 3, 3: 5}
    assert left_at == {0: 2, 1: 4, 2: 4, 3: 6}
    assert not scheduler.has_work and len(scheduler.batch) == 0
    for request, stream in zip(requests, streams, strict=True):
        assert request.finish_reason == "length" and request.produced == stream.length
        assert text(loop, request) == alone(stream, fused)  # the neighbours changed nothing
    assert [a.done, b.done, c.done, d.done] == [True] * 4


def test_a_failing_join_fails_that_request_alone_and_leaks_no_slot(loop) -> None:
    fused = weights()
    scheduler = Scheduler(DecodeBatch(fused, VOCAB, capacity=1))
    bad, good = handle(loop, Stream("ab€", 4, 1)), handle(loop, Stream("ab", 4, 2))
    scheduler.add(bad)
    scheduler.add(good)
    assert scheduler.schedule() == [bad]  # priming refused the seed text...
    assert scheduler.active == 1 and scheduler.waiting == 0  # ...and the one slot went to the next
    assert bad.finish_reason == "error"
    with pytest.raises(UnknownCharacters):
        text(loop, bad)
    left = []
    while scheduler.has_work:
        left += step(scheduler)
    assert left == [good] and text(loop, good) == alone(good.stream, fused)
    assert len(scheduler.batch) == 0 and not scheduler.batch.is_full


def test_a_failing_step_fails_every_active_request_and_the_line_stays(loop) -> None:
    scheduler = Scheduler(DecodeBatch(weights(broken=True), VOCAB, capacity=2))
    first, second, third = (handle(loop, Stream("ab", 5, seed)) for seed in range(3))
    for request in (first, second, third):
        scheduler.add(request)
    assert scheduler.schedule() == []
    with pytest.raises(RuntimeError) as failure:  # NaN logits leave nothing to sample from
        scheduler.batch.step()
    assert scheduler.fail_all(failure.value) == [first, second]
    for request in (first, second):
        assert request.finish_reason == "error" and request.error is failure.value
        with pytest.raises(RuntimeError):
            text(loop, request)
    # Their slots are free, and the request still in line joins at the next step.
    assert len(scheduler.batch) == 0 and scheduler.active == 0 and scheduler.waiting == 1
    assert scheduler.schedule() == [] and scheduler.active == 1 and not third.done


def test_cancel_while_waiting(loop) -> None:
    fused = weights()
    scheduler = Scheduler(DecodeBatch(fused, VOCAB, capacity=1))
    running, waiting = handle(loop, Stream("ab", 6, 1)), handle(loop, Stream("cd", 6, 2))
    scheduler.add(running)
    scheduler.add(waiting)
    step(scheduler)
    assert scheduler.waiting == 1
    assert scheduler.cancel(waiting) is True
    assert scheduler.waiting == 0 and waiting.finish_reason == "cancelled" and text(loop, waiting) == ""
    assert scheduler.cancel(waiting) is False  # gone already: nothing to count twice
    while scheduler.has_work:
        step(scheduler)
    assert text(loop, running) == alone(running.stream, fused)  # the line's change touched no one


def test_cancel_while_active_frees_the_slot_for_the_next(loop) -> None:
    fused = weights()
    scheduler = Scheduler(DecodeBatch(fused, VOCAB, capacity=1))
    cancelled, next_one = handle(loop, Stream("ab", 50, 1)), handle(loop, Stream("cd", 4, 2))
    scheduler.add(cancelled)
    for _ in range(3):
        step(scheduler)
    scheduler.add(next_one)
    assert scheduler.cancel(cancelled) is True
    assert scheduler.active == 0 and len(scheduler.batch) == 0 and not scheduler.batch.is_full
    partial = text(loop, cancelled)
    assert cancelled.finish_reason == "cancelled" and len(partial) == 3
    assert alone(cancelled.stream, fused).startswith(partial)
    while scheduler.has_work:
        step(scheduler)
    assert text(loop, next_one) == alone(next_one.stream, fused)
    assert scheduler.cancel(next_one) is False  # finished: a late cancel changes nothing
