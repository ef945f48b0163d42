"""Grouped session reads: the row reads that arrive while one group is read go in the next, one SELECT.

Every session request starts by reading its row. At 32 concurrent clients their requests arrive
together (their previous answers left with one group commit), and one pool thread per read waited for
the GIL behind the event loop and the engine thread, more than the read itself took. Here one thread
(app/core/grouped.py) reads every waiting row in one reader transaction (db.begin_reading: on SQLite
it never waits for a writer) and answers each request as `session_store.get` would have.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.core.db import PerDatabase, begin_reading
from app.core.grouped import Grouped
from app.services import session_store
from app.services.session_store import SessionRecord

_Read = tuple[str, str, float]  # session_id, owner, idle_s


class GroupRead:
    """The session reads of one database (one per sessionmaker), read in groups."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._group: Grouped[_Read, SessionRecord] = Grouped("session-reader", self._read)

    async def get(self, session_id: str, *, owner: str, idle_s: float) -> SessionRecord:
        """`session_store.get`'s answer, read with whatever other reads were waiting."""
        return await self._group((session_id, owner, idle_s))

    def _read(self, group: Sequence[_Read]) -> list[SessionRecord | BaseException]:
        with self._sessions() as session:
            begin_reading(session)  # no write lock: a read never waits for other sessions' commits
            return list(session_store.get_many(session, group))


# The grouped reads of a database (its app's sessionmaker).
reader_for = PerDatabase(GroupRead)
