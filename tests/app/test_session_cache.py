"""app/services/session_cache.py: the records a server remembers, where its session changes start."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from app.core.tables import utcnow
from app.services import session_cache
from app.services.session_cache import RecentSessions
from app.services.session_store import SessionRecord


def record(session_id: str = "a" * 32, owner: str = "me", version: int = 1) -> SessionRecord:
    now = utcnow()
    return SessionRecord(session_id, owner, 1, None, b"\0" * 8, 1, 1, 3, [], version, now, now)


def test_it_answers_only_its_owner_and_only_while_not_idle() -> None:
    recent = RecentSessions()
    kept = record()
    recent.put(kept)
    assert recent.get(kept.id, owner="me", idle_s=60) is kept
    assert recent.get(kept.id, owner="someone else", idle_s=60) is None
    recent.put(replace(kept, version=2, last_used_at=utcnow() - timedelta(seconds=120)))
    assert recent.get(kept.id, owner="me", idle_s=60) is None  # the database decides (and deletes it)


def test_a_newer_version_is_never_replaced_by_an_older_or_equal_one() -> None:
    recent = RecentSessions()
    newer = record(version=3)
    recent.put(newer)
    recent.put(record(version=2))  # a change that started earlier and committed later cannot be
    recent.put(record(version=3))  # a read of the same version keeps the one remembered
    assert recent.holds(newer)
    recent.put(record(version=4))
    assert not recent.holds(newer)
    recent.forget(newer.id)
    assert recent.get(newer.id, owner="me", idle_s=60) is None


def test_it_forgets_the_least_recently_used_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_cache, "MAX_RECORDS", 3)
    recent = RecentSessions()
    for i in range(3):
        recent.put(record(f"{i}" * 32))
    assert recent.get("0" * 32, owner="me", idle_s=60) is not None  # used: the most recent now
    recent.put(record("3" * 32))
    assert [recent.get(f"{i}" * 32, owner="me", idle_s=60) is not None for i in range(4)] == [
        True,
        False,
        True,
        True,
    ]
