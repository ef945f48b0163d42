"""app/core/grouped.py: calls that arrive while a group runs make the next group; each gets its own
outcome, awaited or blocking."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from app.core.grouped import Grouped


class Doubler:
    """Doubles ints, raising ValueError for negative ones; the first group waits for `release`."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        self.running.set()
        self.release.wait(10)
        if 99 in items:
            raise RuntimeError("the whole group failed")
        return [ValueError(i) if i < 0 else 2 * i for i in items]


def test_calls_waiting_while_a_group_runs_go_together_in_the_next() -> None:
    run = Doubler()
    grouped = Grouped("test", run)

    async def main() -> list[int | BaseException]:
        first = asyncio.ensure_future(grouped(1))
        await asyncio.to_thread(run.running.wait, 10)  # the first group holds the thread
        rest = [asyncio.ensure_future(grouped(i)) for i in (2, -3, 4)]
        await asyncio.sleep(0)
        run.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert run.groups == [[1], [2, -3, 4]]
    assert outcomes[0] == 2 and outcomes[1] == 4 and outcomes[3] == 8
    assert isinstance(outcomes[2], ValueError)


def test_a_group_that_fails_fails_each_call_and_the_next_group_runs() -> None:
    run = Doubler()
    run.release.set()
    grouped = Grouped("test", run)
    with pytest.raises(RuntimeError, match="whole group"):
        grouped.call(99)
    assert grouped.call(5) == 10  # blocking callers (threads) are served by the same thread


def test_a_caller_that_goes_away_leaves_its_call_to_run_with_its_group() -> None:
    run = Doubler()
    grouped = Grouped("test", run)

    async def main() -> int:
        first = asyncio.ensure_future(grouped(1))
        await asyncio.to_thread(run.running.wait, 10)
        gone, kept = asyncio.ensure_future(grouped(2)), asyncio.ensure_future(grouped(3))
        await asyncio.sleep(0)
        gone.cancel()
        run.release.set()
        await first
        return await kept

    assert asyncio.run(main()) == 6
    assert run.groups == [[1], [2, 3]]  # the cancelled call still ran (a write is still committed)


def test_calls_made_in_one_turn_of_the_event_loop_go_in_one_group() -> None:
    # As requests that one decode step finished together make their writes: handed over at the end of
    # the turn, not each waking the thread alone.
    run = Doubler()
    run.release.set()
    grouped = Grouped("test", run)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(grouped(i) for i in range(1, 6))))

    assert asyncio.run(main()) == [2, 4, 6, 8, 10]
    assert run.groups == [[1, 2, 3, 4, 5]]
