"""A worker's lease on a job: claim it, renew it, record what the loop reports under it, settle it.

The lease is the token `claim` writes on the job row. Every later write made on behalf of the run
(the heartbeat, the metrics, samples and checkpoints the loop reports, the final status) is
conditioned on that token in the same transaction: a worker that lost its job (declared dead, then
claimed by another) can no longer touch it, and gets `LeaseLost` instead. The recorders are upserts,
so a retried write, or a step replayed after resuming, overwrites rather than duplicates.

Status moves made here (see app/core/job_status.py for the state machine and app/services/transitions.py
for `move`): `claim` queued -> running (or takes over a running job whose heartbeat is stale, and
settles queued -> cancelled a job whose cancel raced with a requeue), `finish` running -> succeeded |
failed | cancelled, `requeue` running -> queued.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.core.job_status import FINISHED, JobStatus
from app.core.settings import DEFAULT_KEEP_CHECKPOINTS
from app.core.tables import Base, Checkpoint, Job, Metric, Sample, UTCDateTime, utcnow
from app.services.attempts import AttemptOutcome, Runner, close_open, open_attempt, this_process
from app.services.retention import prune_checkpoints
from app.services.transitions import move, rows_updated


class LeaseLost(Exception):
    """The job is no longer this worker's (cancelled and settled elsewhere, or claimed by another)."""


def claim(session: Session, job_id: int, *, lease_seconds: float, runner: Runner | None = None) -> str | None:
    """Mark the job running for this worker; None if it is not claimable (finished, running elsewhere).

    The claim opens the job's next attempt record (app/services/attempts.py) for `runner` (default:
    this process on the CPU) in the same transaction."""
    token = uuid4().hex
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    # Not a `move`: besides queued -> running, a running job whose worker stopped heart-beating died
    # with it and may be taken over; its status stays running and only the lease changes hands.
    claimed = rows_updated(
        session,
        update(Job)
        .where(
            Job.id == job_id,
            Job.cancel_requested.is_(False),
            or_(
                Job.status == JobStatus.QUEUED,
                and_(Job.status == JobStatus.RUNNING, Job.heartbeat_at < stale),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            lease_token=token,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, literal(now, UTCDateTime)),
            attempts=Job.attempts + 1,
            updated_at=now,
        ),
    )
    if claimed == 1:
        number = session.scalar(select(Job.attempts).where(Job.id == job_id))
        open_attempt(session, job_id, number=int(number or 1), runner=runner or this_process())
        session.commit()
        return token
    session.commit()
    # A queued job whose cancel raced with a requeue: settle it now.
    move(
        session,
        Job.id == job_id,
        Job.cancel_requested.is_(True),
        from_=[JobStatus.QUEUED],
        to=JobStatus.CANCELLED,
    )
    session.commit()
    return None


def heartbeat(
    session: Session, job_id: int, token: str, *, step: int, steps_per_second: float | None
) -> bool:
    """Renew the lease and report progress; returns whether a cancel was requested."""
    job = _owned(session, job_id, token)
    job.step = max(job.step, min(step, job.total_steps))
    job.steps_per_second = steps_per_second
    cancel = job.cancel_requested
    session.commit()
    return cancel


def rewind(session: Session, job_id: int, token: str, *, step: int) -> None:
    """Start this attempt's timeline at `step`, the checkpoint it resumes from (0 without one).

    An attempt that died after its last checkpoint recorded steps that the resumed run trains
    again; its rows past `step` belong to a lost timeline and would otherwise sit beside the new
    run's (or past the final step, if the job is then cancelled early).
    """
    job = _owned(session, job_id, token)
    session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > step))
    session.execute(delete(Sample).where(Sample.job_id == job_id, Sample.step > step))
    job.step = step
    session.commit()


def _owned(session: Session, job_id: int, token: str) -> Job:
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.lease_token != token or job.status != JobStatus.RUNNING:
        session.rollback()
        raise LeaseLost(f"job {job_id} is no longer held by this worker")
    job.heartbeat_at = utcnow()
    return job


def _upsert(
    session: Session, table: type[Base], rows: list[dict[str, Any]], keys: list[str], update_cols: list[str]
) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update_cols}
    )
    session.execute(stmt)


def record_metrics(
    session: Session, job_id: int, token: str, *, step: int, metrics: dict[str, float]
) -> None:
    # NaN/inf are neither JSON nor storable on SQLite; a diverged run shows as missing points.
    finite = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
    job = _owned(session, job_id, token)
    job.latest_metrics = {**job.latest_metrics, **finite}
    job.step = max(job.step, step)
    if finite:
        now = utcnow()
        rows = [
            {"job_id": job_id, "name": k, "step": step, "value": v, "created_at": now}
            for k, v in finite.items()
        ]
        # Idempotent: a retried write (or a step replayed after resuming) overwrites, never duplicates.
        _upsert(session, Metric, rows, ["job_id", "name", "step"], ["value", "created_at"])
    session.commit()


def record_sample(
    session: Session, job_id: int, token: str, *, step: int, temperature: float, text: str
) -> None:
    _owned(session, job_id, token)
    row = {"job_id": job_id, "step": step, "temperature": temperature, "text": text, "created_at": utcnow()}
    _upsert(session, Sample, [row], ["job_id", "step", "temperature"], ["text", "created_at"])
    session.commit()


def record_checkpoint(
    session: Session,
    job_id: int,
    token: str,
    *,
    step: int,
    checkpoint: dict[str, Any],
    is_best: bool,
    is_final: bool,
    keep_last: int = DEFAULT_KEEP_CHECKPOINTS,
) -> int:
    """Store the bytes and point the job at them in ONE transaction: no half-recorded checkpoint.

    The same transaction deletes the checkpoints retention no longer keeps (see services/retention.py).
    """
    from models.checkpoint import to_bytes

    data = to_bytes(checkpoint)
    val_loss = (checkpoint.get("metrics") or {}).get("val_loss")
    job = _owned(session, job_id, token)
    row = session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step)
    ).first()
    if row is None:
        row = Checkpoint(job_id=job_id, step=step)
        session.add(row)
    row.task = checkpoint["task"]
    row.model_type = checkpoint["architecture"]["type"]
    row.architecture = dict(checkpoint["architecture"])
    row.train_config = dict(checkpoint["train_config"])
    row.vocab = list(checkpoint["vocab"]) if checkpoint.get("vocab") is not None else None
    row.is_best = bool(row.is_best) or is_best
    row.is_final = bool(row.is_final) or is_final
    row.val_loss = val_loss if val_loss is None or math.isfinite(val_loss) else None
    row.size_bytes = len(data)
    row.data = data
    session.flush()
    if is_best:
        session.execute(
            update(Checkpoint)
            .where(Checkpoint.job_id == job_id, Checkpoint.id != row.id, Checkpoint.is_best.is_(True))
            .values(is_best=False)
        )
        job.best_checkpoint_id = row.id
        best = checkpoint.get("best_val_loss")
        job.best_val_loss = best if best is not None and math.isfinite(best) else None
    job.latest_checkpoint_id = row.id
    job.step = max(job.step, step)
    prune_checkpoints(session, job_id, keep_last=keep_last)
    session.commit()
    return row.id


def finish(
    session: Session, job_id: int, token: str, *, status: JobStatus, error: str | None = None, **values: Any
) -> bool:
    """running -> succeeded | failed | cancelled; only for the lease holder (`requeue` gives a job back)."""
    if status not in FINISHED:
        raise ValueError(f"finish() settles a job; {status} is not a final status")
    moved = move(
        session,
        Job.id == job_id,
        Job.lease_token == token,
        from_=[JobStatus.RUNNING],
        to=status,
        error=error,
        steps_per_second=None,
        **values,
    )
    if moved == 1:
        close_open(session, job_id, outcome=AttemptOutcome(status.value))
    session.commit()
    return moved == 1


def requeue(session: Session, job_id: int, token: str) -> bool:
    """Give the job back (worker shutting down) unless a cancel was requested meanwhile."""
    moved = move(
        session,
        Job.id == job_id,
        Job.lease_token == token,
        Job.cancel_requested.is_(False),
        from_=[JobStatus.RUNNING],
        to=JobStatus.QUEUED,
        lease_token=None,
        steps_per_second=None,
    )
    if moved == 1:
        close_open(session, job_id, outcome=AttemptOutcome.REQUEUED)
    session.commit()
    return moved == 1
