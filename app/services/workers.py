"""Worker liveness: each worker's sweep writes a heartbeat row; `/ready` and `/metrics` count them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.tables import Worker, utcnow


@dataclass(frozen=True)
class WorkerIdentity:
    name: str  # hostname:pid
    hostname: str
    pid: int
    queue: str
    started_at: datetime


def beat(session: Session, worker: WorkerIdentity, *, current_job_id: int | None) -> None:
    """Insert or refresh this worker's row."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    row = {
        "name": worker.name,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "queue": worker.queue,
        "started_at": worker.started_at,
        "current_job_id": current_job_id,
        "heartbeat_at": now,
    }
    stmt = insert(Worker).values(row)
    updated = {c: stmt.excluded[c] for c in row if c != "name"}
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=updated))
    session.commit()


def forget(session: Session, name: str) -> None:
    """A worker that stops cleanly leaves at once rather than after a lease of silence."""
    session.execute(delete(Worker).where(Worker.name == name))
    session.commit()


def prune(session: Session, *, lease_seconds: float) -> None:
    """Drop rows of workers silent for longer than the lease: they are dead (or will beat again)."""
    session.execute(delete(Worker).where(Worker.heartbeat_at < _stale(lease_seconds)))
    session.commit()


def live_workers(session: Session, *, lease_seconds: float) -> dict[str, int]:
    """Workers that beat within the lease, by queue."""
    rows = session.execute(
        select(Worker.queue, func.count())
        .where(Worker.heartbeat_at >= _stale(lease_seconds))
        .group_by(Worker.queue)
    ).all()
    return {queue: count for queue, count in rows}


def _stale(lease_seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=lease_seconds)
