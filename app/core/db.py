"""Engines and sessions for PostgreSQL and SQLite, and `migrate()` (the only way the schema is made)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, *, busy_timeout_s: float) -> None:
    # Let SQLAlchemy's "begin" hook decide how transactions start (pysqlite's own BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; API and worker are separate processes on one file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A connection execution option: this transaction only reads (`begin_reading`).
_READ_ONLY = "rnnlab_read_only"


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front and waits for it (busy_timeout); a deferred transaction
    # that later upgrades to a write fails at once with "database is locked" when another one wrote.
    # A transaction that only reads needs no write lock: under WAL it reads its snapshot while a
    # writer commits, instead of queueing behind the writer's fsync (and the busy handler's sleeps).
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(
            engine,
            "connect",
            lambda c, r: _sqlite_on_connect(c, r, busy_timeout_s=busy_timeout_s),
        )
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache(maxsize=16)
def engine_for(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=16)
def sessionmaker_for(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def begin_reading(session: Session) -> None:
    """Begin `session`'s transaction as one that only reads (call it before its first statement): on
    SQLite a DEFERRED transaction, which never waits for the write lock; elsewhere an ordinary one.
    A write in it may fail on SQLite ("database is locked") when another writer committed after its
    first read: end it (commit or rollback) before writing."""
    session.connection(execution_options={_READ_ONLY: True})


Made = TypeVar("Made")


class PerDatabase(Generic[Made]):
    """One `Made` per database (an app's sessionmaker), made on first use and dropped with it: the
    group reads and group commits of sessions are per database, and tests make many apps."""

    def __init__(self, make: Callable[[sessionmaker[Session]], Made]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[sessionmaker[Session], Made] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, sessions: sessionmaker[Session]) -> Made:
        with self._lock:
            made = self._made.get(sessions)
            if made is None:
                made = self._made[sessions] = self._make(sessions)
            return made


def migrate(url: str, revision: str = "head") -> None:
    """Run Alembic `upgrade` to `revision` on `url`."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: configparser would choke on '%' in passwords.
    config.attributes["url"] = url
    command.upgrade(config, revision)


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
