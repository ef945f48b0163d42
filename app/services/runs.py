"""The worker's side of a job: claim it, record what the loop reports, settle the outcome.

Every write made on behalf of a run is conditioned on the lease token the claim wrote, in the same
transaction: a worker that lost its job (declared dead, then claimed by another) can no longer touch it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import timedelta
from time import monotonic
from typing import Any, TypeVar
from uuid import uuid4

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from app.db_retry import retry_db
from app.job_status import FINISHED, JobStatus
from app.queue import Enqueue
from app.services import outbox
from app.services.retention import prune_checkpoints
from app.services.transitions import move, rows_updated
from app.settings import DEFAULT_KEEP_CHECKPOINTS
from app.tables import Base, Checkpoint, Dataset, Job, Metric, Sample, UTCDateTime, utcnow
from models.callbacks import TrainingCallbacks
from models.config import TaskConfig

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_task_config = TypeAdapter(TaskConfig)


class LeaseLost(Exception):
    """The job is no longer this worker's (cancelled and settled elsewhere, or claimed by another)."""


def claim(session: Session, job_id: int, *, lease_seconds: float) -> str | None:
    """Mark the job running for this worker; None if it is not claimable (finished, running elsewhere)."""
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
    session.commit()
    if claimed == 1:
        return token
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


def load_run(session: Session, job_id: int) -> tuple[Any, Any, dict[str, Any] | None]:
    """(config, data, resume checkpoint): the job's own latest checkpoint wins over `resume_from`."""
    from models.checkpoint import from_bytes
    from models.data import Vocabulary, make_data

    job = session.get(Job, job_id)
    assert job is not None
    config = _task_config.validate_python(job.config)
    checkpoint_id = job.latest_checkpoint_id or job.resume_from
    resume = None
    if checkpoint_id is not None:
        row = session.get(Checkpoint, checkpoint_id)
        if row is None:
            raise ValueError(f"checkpoint {checkpoint_id} to resume from no longer exists")
        resume = from_bytes(row.data)
    text = None
    vocab = None
    if job.dataset_id is not None:
        dataset = session.get(Dataset, job.dataset_id)
        assert dataset is not None
        text = dataset.text
        if resume is not None and resume.get("vocab"):
            vocab = Vocabulary(resume["vocab"])
    return config, make_data(config, text, vocab=vocab), resume


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
    session.commit()
    return moved == 1


def release_orphans(
    session: Session, *, queue: str, lease_seconds: float | None, max_attempts: int
) -> list[int]:
    """Give running jobs of `queue` whose worker is gone back to it; returns their ids (still to send).

    A worker killed outright (SIGKILL, power loss) leaves its job `running`, and on the filesystem
    broker its task message is already gone, so nothing would ever pick the job up again. A running
    job is orphaned when its heartbeat is older than the lease or, with `lease_seconds=None`, always:
    `rnnlab serve` calls it before it starts (or restarts) its only worker, when nothing can really be
    running. The job then resumes from its latest checkpoint; steps after it are recorded again, and
    metric writes are upserts, so they replace rather than duplicate.

    Each orphan counts as a crash; the `max_attempts`-th one fails the job instead (a job that kills
    every worker it runs on, out of memory say, must not be re-queued forever). Every move is a
    conditional UPDATE of one job, so of several workers sweeping at once only one releases it.
    """
    silent: list[ColumnElement[bool]] = [Job.queue == queue, Job.status == JobStatus.RUNNING]
    if lease_seconds is not None:
        silent.append(Job.heartbeat_at < utcnow() - timedelta(seconds=lease_seconds))
    # The steps the dead attempt made after its checkpoint are lost: while the job waits, its step
    # is where it will resume, so neither a user nor a poller sees progress that is not there.
    resume_step = (
        select(Checkpoint.step)
        .where(Checkpoint.id == func.coalesce(Job.latest_checkpoint_id, Job.resume_from))
        .scalar_subquery()
    )
    released: list[int] = []
    for job_id in list(session.scalars(select(Job.id).where(*silent).order_by(Job.id))):
        poisoned = move(
            session,
            Job.id == job_id,
            *silent,
            Job.crashes >= max_attempts - 1,
            from_=[JobStatus.RUNNING],
            to=JobStatus.FAILED,
            crashes=Job.crashes + 1,
            lease_token=None,
            steps_per_second=None,
            error=(
                f"its worker died {max_attempts} times (RNNLAB_MAX_ATTEMPTS={max_attempts}); "
                "the job may be what kills it (out of memory?)"
            ),
        )
        requeued = move(
            session,
            Job.id == job_id,
            *silent,
            from_=[JobStatus.RUNNING],
            to=JobStatus.QUEUED,
            crashes=Job.crashes + 1,
            lease_token=None,
            steps_per_second=None,
            step=func.coalesce(resume_step, 0),
            dispatched_at=None,  # its message went with the worker (or comes back late, and is skipped)
        )
        session.commit()
        extra = {"job_id": job_id}
        if poisoned:
            log.error("job %s failed: its worker died %s times", job_id, max_attempts, extra=extra)
        elif requeued:
            log.warning("job %s was orphaned by a dead worker; queued again", job_id, extra=extra)
            released.append(job_id)
    return released


def sweep(
    session: Session, *, enqueue: Enqueue, queue: str, lease_seconds: float | None, max_attempts: int
) -> list[int]:
    """Release `queue`'s jobs whose worker died (see `release_orphans`), then send every queued job
    of it the broker never received (`outbox.dispatch_pending`); returns the ids sent."""
    release_orphans(session, queue=queue, lease_seconds=lease_seconds, max_attempts=max_attempts)
    return outbox.dispatch_pending(session, enqueue=enqueue, queue=queue)


class JobRecorder(TrainingCallbacks):
    """Training callbacks that write to the database and stop on cancel or worker shutdown.

    A write that finds the database unreachable is retried with backoff for up to `retry_seconds`
    (the lease): training pauses rather than fails while PostgreSQL restarts, and nothing is skipped.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        token: str,
        *,
        start_step: int,
        interrupted: Callable[[], bool] = lambda: False,
        poll_seconds: float = 0.25,
        retry_seconds: float = 120.0,
        keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
    ) -> None:
        self.sessions, self.job_id, self.token = sessions, job_id, token
        self.keep_checkpoints = keep_checkpoints
        self.interrupted_by = interrupted
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.step = start_step
        self.cancelled = False
        self.interrupted = False
        self._rate: float | None = None
        self._polled_at = monotonic()
        self._polled_step = start_step

    def _write(self, what: str, write: Callable[[Session], _T]) -> _T:
        def attempt() -> _T:
            with self.sessions() as session:
                return write(session)

        return retry_db(attempt, what=f"job {self.job_id}'s {what}", give_up_after=self.retry_seconds)

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._write(
            f"metrics at step {step}",
            lambda s: record_metrics(s, self.job_id, self.token, step=step, metrics=metrics),
        )

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        self._write(
            f"checkpoint at step {step}",
            lambda s: record_checkpoint(
                s,
                self.job_id,
                self.token,
                step=step,
                checkpoint=checkpoint,
                is_best=is_best,
                is_final=is_final,
                keep_last=self.keep_checkpoints,
            ),
        )

    def on_sample(self, step: int, temperature: float, text: str) -> None:
        self._write(
            f"sample at step {step}",
            lambda s: record_sample(
                s, self.job_id, self.token, step=step, temperature=temperature, text=text
            ),
        )

    def should_stop(self) -> bool:
        self.step += 1  # the loop asks once per step
        if self.interrupted_by():
            self.interrupted = True
            return True
        now = monotonic()
        if now - self._polled_at < self.poll_seconds:
            return False
        rate = (self.step - self._polled_step) / (now - self._polled_at)
        # Smoothed so the ETA does not jump with every validation pass.
        self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
        self._polled_at, self._polled_step = now, self.step
        step, rate_now = self.step, self._rate
        self.cancelled = self._write(
            "heartbeat",
            lambda s: heartbeat(s, self.job_id, self.token, step=step, steps_per_second=rate_now),
        )
        return self.cancelled
