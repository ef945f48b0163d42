"""Group commit for session writes: the state updates that arrive while one commit runs go in the next,
together.

Every session request ends with a write (its new state), and on SQLite every commit is an fsync that
only one writer at a time may make: at 32 concurrent clients the writes queued behind each other (and
behind SQLite's busy handler, which sleeps up to 100 ms between tries) and cost more than the
generation they followed. Here the first thread with a write becomes the leader: it takes every write
waiting, applies each as its own conditional UPDATE (`session_store.apply`) in one transaction, commits
once, hands each writer its result, and repeats while writes keep arriving; the others wait for theirs.
Each update is still all or nothing and never interleaves with another of the same session (its
version condition), and none is answered before its commit.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import SessionChanged, SessionNotFound
from app.services import session_store
from app.services.session_store import SessionRecord


@dataclass(eq=False)
class _Write:
    record: SessionRecord
    values: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: SessionRecord | None = None
    error: BaseException | None = None


class GroupCommit:
    """The session writes of one database (one per sessionmaker), committed in groups."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._waiting: list[_Write] = []
        self._leading = False

    def save(self, record: SessionRecord, **values: Any) -> SessionRecord:
        """`session_store.save`'s result (blocking: call it from a thread), committed with whatever
        other writes were waiting."""
        write = _Write(record, values)
        with self._lock:
            self._waiting.append(write)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        write.done.wait()
        if write.error is not None:
            raise write.error
        assert write.result is not None
        return write.result

    def _lead(self) -> None:
        while True:
            with self._lock:
                group, self._waiting = self._waiting, []
                if not group:
                    self._leading = False
                    return
            self._commit(group)

    def _commit(self, group: list[_Write]) -> None:
        try:
            with self._sessions() as session:
                for write in group:
                    try:
                        write.result = session_store.apply(session, write.record, **write.values)
                    except (SessionChanged, SessionNotFound) as exc:
                        write.error = exc  # this UPDATE changed nothing; the others stand
                session.commit()
        except Exception as exc:  # the commit failed: none of the group was written
            for write in group:
                write.error = write.error or exc
                write.result = None
        finally:
            for write in group:
                write.done.set()


_writers: weakref.WeakKeyDictionary[sessionmaker[Session], GroupCommit] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def writer_for(sessions: sessionmaker[Session]) -> GroupCommit:
    """The group commit of a database (its app's sessionmaker)."""
    with _writers_lock:
        writer = _writers.get(sessions)
        if writer is None:
            writer = _writers[sessions] = GroupCommit(sessions)
        return writer
