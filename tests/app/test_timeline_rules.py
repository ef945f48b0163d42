"""The two small rules behind the timeline and the horizon figures: which checkpoints a bounded table
or figure shows, and which recorded metric a checkpoint's row takes."""

from __future__ import annotations

from app.services.checkpoints import spread
from app.services.timeline import _at_or_before


def test_spread_keeps_the_first_and_the_last_and_spaces_the_rest() -> None:
    assert spread([10, 20, 30], 5) == [10, 20, 30]
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread(list(range(10)), 2) == [0, 9]
    assert spread(list(range(10)), 1) == [9]  # the latest, if only one
    assert spread([], 3) == []


def test_a_checkpoint_takes_the_metric_at_its_step_or_the_latest_before() -> None:
    points = [(10, 1.0), (20, 2.0), (40, 4.0)]
    assert _at_or_before(points, 20) == (20, 2.0)
    assert _at_or_before(points, 39) == (20, 2.0)
    assert _at_or_before(points, 100) == (40, 4.0)
    assert _at_or_before(points, 9) == (None, None)  # nothing recorded yet
    assert _at_or_before([], 5) == (None, None)
