"""Group commit for session writes: the state updates that arrive while one commit runs go in the next,
together.

Every session request ends with a write (its new state), and on SQLite every commit is an fsync that
only one writer at a time may make: at 32 concurrent clients the writes queued behind each other (and
behind SQLite's busy handler, which sleeps up to 100 ms between tries) and cost more than the
generation they followed. Here one thread (app/core/grouped.py) takes every write waiting, applies each
as its own conditional UPDATE (`session_store.apply_all_*`, through the driver) in one transaction,
commits once, hands each writer its result, and repeats while writes keep arriving. Each update is
still all or nothing and never interleaves with another of the same session (its version condition),
and none is answered before its commit.

How durable that commit is, is the operator's choice (RNNLAB_SESSION_FSYNC):
- `always`: on disk before any write of the group is answered (an fsync per group);
- `everysec` (the default, as Redis's `appendfsync everysec`): committed before it is answered, so a
  killed or restarted process never loses it (on SQLite it is in the WAL, which the operating system
  holds; on PostgreSQL in the server's WAL buffers), and on disk within a second. An operating-system
  crash or a power cut (on PostgreSQL, a crash of the database server) may roll back the latest
  second's changes, each whole, never part of one. On this project's 2-core machine a synced SQLite
  commit took 0.4-2 ms, a tenth or more of a 200-character generation at one client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import PerDatabase
from app.core.grouped import Grouped
from app.services import session_store
from app.services.session_store import SessionRecord

log = logging.getLogger(__name__)

_Write = tuple[SessionRecord, dict[str, Any], bool]  # the record read, the new values, synced
_Outcome = SessionRecord | BaseException
# An unsynced SQLite commit is on disk within this long (PostgreSQL's WAL writer flushes its own
# within 3 x wal_writer_delay, 600 ms by default).
FLUSH_WITHIN_S = 1.0


class GroupCommit:
    """The session writes of one database (one per sessionmaker), committed in groups."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._engine: Engine = sessions.kw["bind"]  # the writes go through its driver connections
        self._group: Grouped[_Write, SessionRecord] = Grouped("session-writer", self._commit)
        self._flush_lock = threading.Lock()
        self._flush_timer: threading.Timer | None = None

    async def write(self, record: SessionRecord, *, synced: bool = True, **values: Any) -> SessionRecord:
        """The record written (or SessionChanged / SessionNotFound raised), committed with whatever
        other writes were waiting (awaited on the event loop: no thread waits for the commit).
        `synced`: on disk before it is answered; else within FLUSH_WITHIN_S."""
        return await self._group((record, values, synced))

    def save(self, record: SessionRecord, *, synced: bool = True, **values: Any) -> SessionRecord:
        """`write`, blocking the calling thread."""
        return self._group.call((record, values, synced))

    def _commit(self, group: Sequence[_Write]) -> list[_Outcome]:
        """Each write's result or its SessionChanged / SessionNotFound (that UPDATE changed nothing;
        the others stand); an exception out of here (the commit failed) is every write's. The group
        is synced if any of its writes must be."""
        synced = any(synced for _, _, synced in group)
        changes = [(record, values) for record, values, _ in group]
        dialect = self._engine.dialect
        connection = self._engine.raw_connection()  # from the pool: its checks, its connect hooks
        try:
            driver = connection.driver_connection
            if dialect.name == "sqlite":
                outcomes = session_store.apply_all_sqlite(driver, changes, synced=synced)  # type: ignore[arg-type]
            else:
                outcomes = session_store.apply_all_postgresql(driver, changes, synced=synced)
        except dialect.loaded_dbapi.Error as exc:  # e.g. the server restarting: a 503, as elsewhere
            raise OperationalError("session group commit", None, exc) from exc
        finally:
            connection.close()
        if not synced and dialect.name == "sqlite":  # PostgreSQL's WAL writer flushes on its own
            self._flush_soon()
        return list(outcomes)

    def _flush_soon(self) -> None:
        with self._flush_lock:
            if self._flush_timer is None:
                self._flush_timer = threading.Timer(FLUSH_WITHIN_S, self._flush)
                self._flush_timer.daemon = True
                self._flush_timer.start()

    def _flush(self) -> None:
        """Sync the WAL: a passive checkpoint syncs it before it copies any page (and waits for no
        reader or writer)."""
        with self._flush_lock:  # a commit from now on schedules a flush of its own
            self._flush_timer = None
        connection = self._engine.raw_connection()
        try:
            connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
        except Exception:  # e.g. the disk is full: the next unsynced commit schedules another try
            log.warning("could not flush the session writes to disk", exc_info=True)
        finally:
            connection.close()


# The group commit of a database (its app's sessionmaker).
writer_for = PerDatabase(GroupCommit)
