"""Workers: each worker's sweep writes a heartbeat row; `/ready` and `/metrics` count the live ones,
`GET /workers` lists them all (Flower's worker table).

A worker silent for longer than the lease is dead (shown as such); its row is dropped after
`DEAD_WORKER_LEASES` leases, so a crashed worker stays visible for a while and then goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.tables import Worker, utcnow
from app.schemas.resources import WorkerOut
from app.services.attempts import finished_counts

# Leases of silence after which a dead worker's row is deleted (it is listed as dead until then).
DEAD_WORKER_LEASES = 10


@dataclass(frozen=True)
class WorkerIdentity:
    name: str  # hostname:pid
    hostname: str
    pid: int
    queue: str
    device: str  # as declared: cpu, cuda:0 ...
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
        "device": worker.device,
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
    """Drop rows of workers silent for `DEAD_WORKER_LEASES` leases: long dead (or they beat again)."""
    session.execute(delete(Worker).where(Worker.heartbeat_at < _stale(lease_seconds * DEAD_WORKER_LEASES)))
    session.commit()


def list_workers(session: Session, *, lease_seconds: float) -> list[WorkerOut]:
    """Every worker with a row, live ones first, each with the jobs it finished."""
    rows = session.scalars(select(Worker).order_by(Worker.heartbeat_at.desc(), Worker.name)).all()
    finished = finished_counts(session, [row.name for row in rows])
    stale = _stale(lease_seconds)
    listed = [
        WorkerOut(
            name=row.name,
            hostname=row.hostname,
            pid=row.pid,
            queue=row.queue,
            device=row.device,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            alive=row.heartbeat_at >= stale,
            current_job_id=row.current_job_id,
            jobs_finished=finished.get(row.name, 0),
        )
        for row in rows
    ]
    return sorted(listed, key=lambda worker: not worker.alive)


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
