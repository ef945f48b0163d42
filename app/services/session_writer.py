"""Group commit for session writes: the state updates that arrive while one commit runs go in the next,
together.

Every session request ends with a write (its new state), and on SQLite every commit is an fsync that
only one writer at a time may make: at 32 concurrent clients the writes queued behind each other (and
behind SQLite's busy handler, which sleeps up to 100 ms between tries) and cost more than the
generation they followed. Here one thread (app/core/grouped.py) takes every write waiting, applies each
as its own conditional UPDATE (`session_store.apply`) in one transaction, commits once, hands each
writer its result, and repeats while writes keep arriving. Each update is still all or nothing and
never interleaves with another of the same session (its version condition), and none is answered
before its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.core.db import PerDatabase
from app.core.errors import SessionChanged, SessionNotFound
from app.core.grouped import Grouped
from app.services import session_store
from app.services.session_store import SessionRecord

_Write = tuple[SessionRecord, dict[str, Any]]


class GroupCommit:
    """The session writes of one database (one per sessionmaker), committed in groups."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._group: Grouped[_Write, SessionRecord] = Grouped("session-writer", self._commit)

    async def write(self, record: SessionRecord, **values: Any) -> SessionRecord:
        """`session_store.apply`'s result, committed with whatever other writes were waiting (awaited
        on the event loop: no thread waits for the commit)."""
        return await self._group((record, values))

    def save(self, record: SessionRecord, **values: Any) -> SessionRecord:
        """`write`, blocking the calling thread."""
        return self._group.call((record, values))

    def _commit(self, group: Sequence[_Write]) -> list[SessionRecord | BaseException]:
        """Each write's result or its SessionChanged / SessionNotFound (that UPDATE changed nothing;
        the others stand); an exception out of here (the commit failed) is every write's."""
        outcomes: list[SessionRecord | BaseException] = []
        with self._sessions() as session:
            for record, values in group:
                try:
                    outcomes.append(session_store.apply(session, record, **values))
                except (SessionChanged, SessionNotFound) as exc:
                    outcomes.append(exc)
            session.commit()
        return outcomes


# The group commit of a database (its app's sessionmaker).
writer_for = PerDatabase(GroupCommit)
