"""Sessions in the database: each change one transaction, conditioned on the version it read.

A session row holds a text model's state as float32 bytes (bitwise what the engine gave back) with
its shape, the characters consumed, the clamps pending, and who made it (a digest of the token).
Expiry is lazy and swept: a read of an expired session deletes it and answers 404, and every create
first deletes all expired sessions, so an abandoned one costs a row until the next create at most.
Torch-free: the service turns the bytes into tensors.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, delete, func, select, text
from sqlalchemy.orm import Session

from app.core.errors import SessionChanged, SessionNotFound, TooManySessions
from app.core.tables import ModelSession, utcnow

STATE_DTYPE = "float32"  # little-endian, as the bytes are written on every platform we run on
# What a 429 for too many sessions suggests: expiry frees one within the idle time at most, a delete at once.
RETRY_AFTER_S = 60


@dataclass(frozen=True)
class SessionRecord:
    """A session as read, detached from the database session that read it."""

    id: str
    owner: str
    checkpoint_id: int
    model: str | None
    state: bytes
    num_layers: int
    hidden_size: int
    characters: int
    clamps: list[dict[str, Any]]
    version: int
    created_at: datetime
    last_used_at: datetime

    @classmethod
    def of(cls, row: ModelSession) -> SessionRecord:
        return cls(
            row.id,
            row.owner,
            row.checkpoint_id,
            row.model,
            row.state,
            row.num_layers,
            row.hidden_size,
            row.characters,
            list(row.clamps),
            row.version,
            row.created_at,
            row.last_used_at,
        )

    def changed(
        self,
        *,
        state: bytes | None = None,
        characters: int | None = None,
        clamps: list[dict[str, Any]] | None = None,
    ) -> SessionRecord:
        """The record a change writes: the next version, used now, with the values given."""
        return replace(
            self,
            state=self.state if state is None else state,
            characters=self.characters if characters is None else characters,
            clamps=self.clamps if clamps is None else clamps,
            version=self.version + 1,
            last_used_at=utcnow(),
        )


def _rows(session: Session, statement: Executable) -> int:
    """Rows an UPDATE or DELETE touched."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _serialize_owner(session: Session, owner: str) -> None:
    """Make two creates for one owner take turns, so that both cannot count `cap - 1` and insert: on
    PostgreSQL a transaction-scoped advisory lock keyed by the owner; SQLite has one writer at a time
    already, and the sweep's DELETE makes this transaction a writer before it counts."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(owner[:16]) if owner else b"\0" * 8, "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _cutoff(idle_s: float) -> datetime:
    return utcnow() - timedelta(seconds=idle_s)


def sweep_expired(session: Session, *, idle_s: float) -> int:
    """Delete every session unused for `idle_s` seconds (in the caller's transaction): how many."""
    return _rows(session, delete(ModelSession).where(ModelSession.last_used_at < _cutoff(idle_s)))


def create(
    session: Session,
    *,
    owner: str,
    checkpoint_id: int,
    model: str | None,
    state: bytes,
    num_layers: int,
    hidden_size: int,
    characters: int,
    clamps: list[dict[str, Any]],
    idle_s: float,
    cap: int,
) -> SessionRecord:
    """A new session, after the expired ones are swept; TooManySessions when `owner` holds `cap`."""
    _serialize_owner(session, owner)
    sweep_expired(session, idle_s=idle_s)
    held = session.scalar(select(func.count()).select_from(ModelSession).where(ModelSession.owner == owner))
    if (held or 0) >= cap:
        session.rollback()
        raise TooManySessions(cap, retry_after_s=RETRY_AFTER_S)
    now = utcnow()
    row = ModelSession(
        id=secrets.token_hex(16),  # the id is the handle: 128 random bits, not a guessable counter
        owner=owner,
        checkpoint_id=checkpoint_id,
        model=model,
        state=state,
        dtype=STATE_DTYPE,
        num_layers=num_layers,
        hidden_size=hidden_size,
        characters=characters,
        clamps=clamps,
        version=1,
        created_at=now,
        last_used_at=now,
    )
    session.add(row)
    session.commit()
    return SessionRecord.of(row)


def get(session: Session, session_id: str, *, owner: str, idle_s: float) -> SessionRecord:
    """The caller's session; SessionNotFound for another caller's, an unknown or an expired one (an
    expired one is deleted now)."""
    (found,) = get_many(session, [(session_id, owner, idle_s)])
    if isinstance(found, SessionNotFound):
        raise found
    return found


def get_many(
    session: Session, wanted: Sequence[tuple[str, str, float]]
) -> list[SessionRecord | SessionNotFound]:
    """`get` of each (session_id, owner, idle_s), with one SELECT: the record, or the SessionNotFound to
    raise. The expired ones are deleted, each only at the version read (a write that renewed it
    meanwhile stands), in a transaction of their own after the read's: the read's may be a reader's
    (db.begin_reading), which on SQLite cannot always become a writer."""
    ids = {session_id for session_id, _, _ in wanted}
    rows = {row.id: row for row in session.scalars(select(ModelSession).where(ModelSession.id.in_(ids)))}
    found: list[SessionRecord | SessionNotFound] = []
    expired: dict[str, int] = {}
    for session_id, owner, idle_s in wanted:
        row = rows.get(session_id)
        if row is None or row.owner != owner:
            found.append(SessionNotFound(session_id))
        elif row.last_used_at < _cutoff(idle_s):
            expired[session_id] = row.version
            found.append(SessionNotFound(session_id))
        else:
            found.append(SessionRecord.of(row))
    if expired:
        session.rollback()
        for session_id, version in expired.items():
            session.execute(
                delete(ModelSession).where(ModelSession.id == session_id, ModelSession.version == version)
            )
        session.commit()
    return found


def list_for(session: Session, *, owner: str, idle_s: float) -> Sequence[SessionRecord]:
    """The caller's live sessions, most recently used first."""
    query = (
        select(ModelSession)
        .where(ModelSession.owner == owner, ModelSession.last_used_at >= _cutoff(idle_s))
        .order_by(ModelSession.last_used_at.desc(), ModelSession.id)
    )
    return [SessionRecord.of(row) for row in session.scalars(query)]


# What a change writes (`SessionRecord.changed`), in each driver's own parameter style.
_SQLITE_UPDATE = (
    "UPDATE sessions SET state = ?, characters = ?, clamps = ?, version = ?, last_used_at = ? "
    "WHERE id = ? AND version = ?"
)
_POSTGRESQL_UPDATE = (
    "UPDATE sessions SET state = %s, characters = %s, clamps = %s::json, version = %s, last_used_at = %s "
    "WHERE id = %s AND version = %s"
)
# How SQLAlchemy's SQLite dialect stores a DateTime (text that sorts as time does): the other
# statements compare `last_used_at` with values it binds in this form.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
Outcome = SessionRecord | SessionChanged | SessionNotFound


def _apply_each(
    cursor: Any,
    changes: Sequence[tuple[SessionRecord, dict[str, Any]]],
    update_sql: str,
    exists_sql: str,
    time_of: Callable[[datetime], Any],
) -> list[Outcome]:
    """Each change as one UPDATE conditioned on the version its record was read at: the record
    written; SessionChanged if another request wrote it meanwhile (its change stands; this one changed
    nothing); SessionNotFound if it was deleted."""
    outcomes: list[Outcome] = []
    for record, values in changes:
        new = record.changed(**values)
        row = (new.state, new.characters, json.dumps(new.clamps), new.version, time_of(new.last_used_at))
        cursor.execute(update_sql, (*row, record.id, record.version))
        if cursor.rowcount:
            outcomes.append(new)
        elif cursor.execute(exists_sql, (record.id,)).fetchone():
            outcomes.append(SessionChanged(record.id))
        else:
            outcomes.append(SessionNotFound(record.id))
    return outcomes


def apply_all_sqlite(
    connection: sqlite3.Connection,
    changes: Sequence[tuple[SessionRecord, dict[str, Any]]],
    *,
    synced: bool,
) -> list[Outcome]:
    """The changes in one transaction committed here, on a SQLite driver connection in autocommit
    mode (as `db.make_engine` opens them). Through the driver, not SQLAlchemy, whose work per
    statement took four fifths of a session write in the server. `synced`: the commit is on disk when
    this returns; else it is in the WAL (a killed process loses nothing), synced at the next
    checkpoint (synchronous=NORMAL for this transaction)."""
    cursor = connection.cursor()
    (previous,) = cursor.execute("PRAGMA synchronous").fetchone()
    cursor.execute(f"PRAGMA synchronous={'FULL' if synced else 'NORMAL'}")
    try:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            exists = "SELECT 1 FROM sessions WHERE id = ?"
            outcomes = _apply_each(cursor, changes, _SQLITE_UPDATE, exists, _sqlite_time)
            cursor.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
    finally:
        # A pooled connection: SQLAlchemy's transactions on it commit as they did before.
        cursor.execute(f"PRAGMA synchronous={int(previous)}")
    return outcomes


def _sqlite_time(moment: datetime) -> str:
    return moment.strftime(_SQLITE_TIME)


def apply_all_postgresql(
    connection: Any,
    changes: Sequence[tuple[SessionRecord, dict[str, Any]]],
    *,
    synced: bool,
) -> list[Outcome]:
    """The changes in one transaction committed here, on a psycopg connection (not in autocommit, as
    SQLAlchemy's pool hands it out), through the driver as on SQLite. `synced`: the commit is on disk
    when this returns; else synchronous_commit is off for this transaction, and the server's WAL
    writer flushes it within 3 x wal_writer_delay (600 ms by default)."""
    try:
        with connection.cursor() as cursor:
            if not synced:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            exists = "SELECT 1 FROM sessions WHERE id = %s"
            outcomes = _apply_each(cursor, changes, _POSTGRESQL_UPDATE, exists, lambda moment: moment)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return outcomes


def remove(session: Session, session_id: str, *, owner: str) -> None:
    if not _rows(
        session, delete(ModelSession).where(ModelSession.id == session_id, ModelSession.owner == owner)
    ):
        raise SessionNotFound(session_id)
    session.commit()
