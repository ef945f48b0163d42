"""SQLAlchemy tables. The schema itself is created only by the Alembic revisions in migrations/."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.job_status import JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    characters: Mapped[int] = mapped_column(Integer)
    # The sorted distinct characters, joined: what a text job's vocabulary will be.
    vocab: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _one_of(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Experiment(Base):
    """A sweep: one job per point of the grid `sweep` spans over `base_config`."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(20))
    # The request's training fields without the sweep; each job's config is this plus its grid point.
    base_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {axis: [values]} in the order given: the grid is their product, the first axis varying slowest.
    sweep: Mapped[dict[str, list[Any]]] = mapped_column(JSON)
    # Named sets of fields, one arm each, crossed with the sweep (their names are sweep["variant"]).
    variants: Mapped[dict[str, dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    # The database refuses any status the state machine does not know (a test holds every migrated
    # database to exactly `JobStatus`: changing the enum needs a migration).
    __table_args__ = (CheckConstraint(_one_of("status", JobStatus), name="ck_jobs_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(20), index=True)
    model: Mapped[str] = mapped_column(String(40))
    # The moves between statuses are in app/core/job_status.py.
    status: Mapped[JobStatus] = mapped_column(
        # A VARCHAR holding the values ('queued'), not the member names ('QUEUED'); the CHECK above
        # is the constraint, so the type adds none of its own.
        Enum(
            JobStatus,
            native_enum=False,
            create_constraint=False,
            length=20,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        index=True,
        default=JobStatus.QUEUED,
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), index=True)
    # Checkpoint ids are plain integers here (no foreign key): checkpoints reference jobs already.
    resume_from: Mapped[int | None] = mapped_column(Integer)
    latest_checkpoint_id: Mapped[int | None] = mapped_column(Integer)
    best_checkpoint_id: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer)
    steps_per_second: Mapped[float | None] = mapped_column(Float)
    latest_metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    best_val_loss: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts that ended with their worker dead (killed, crashed): RNNLAB_MAX_ATTEMPTS bounds them.
    crashes: Mapped[int] = mapped_column(Integer, default=0)
    # The outbox: the queue the job's task goes to, and when it was handed to the broker (None: a
    # queued job still to send). Only workers of that queue sweep the job.
    queue: Mapped[str] = mapped_column(String(200), default="rnnlab")  # RNNLAB_QUEUE's default
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when a worker claims the job; every write of that worker is conditioned on it.
    lease_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "name", "step", name="uq_metrics_job_name_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("job_id", "step", "temperature", name="uq_samples_job_step_temp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    temperature: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(20))
    model_type: Mapped[str] = mapped_column(String(40))
    # The column keeps the name it had when checkpoints called the architecture "model_config".
    architecture: Mapped[dict[str, Any]] = mapped_column("model_config", JSON)
    train_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    vocab: Mapped[list[str] | None] = mapped_column(JSON)
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    val_loss: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    # The bytes live in the database so the API and workers need no shared disk.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobAttempt(Base):
    """One claim of a job by a worker: who ran it, on what device, and how that run ended."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_job_attempts_job_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # 1, 2, ...: the job's `attempts` counter when this worker claimed it.
    number: Mapped[int] = mapped_column(Integer)
    # The worker's name as it calls itself (`hostname:pid`, the workers table's key) and its device.
    worker: Mapped[str] = mapped_column(String(200), index=True)
    device: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Both null while it runs; the outcome is app/services/attempts.py's `AttemptOutcome`.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))


class Worker(Base):
    """A live worker announces itself here; `/ready` and `rnnlab_workers` count the recent ones."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # `hostname:pid`: unique while the process lives; a restarted container reuses (overwrites) it.
    name: Mapped[str] = mapped_column(String(200), unique=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(200), index=True)
    # As the worker declares it (`cuda:0`, `cpu`); rows written before revision 0006 say `cpu`.
    device: Mapped[str] = mapped_column(String(40), default="cpu")
    current_job_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RegisteredModel(Base):
    """A name for "the model we serve" (MLflow's registered model, W&B's artifact collection)."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Versions are numbered from 1 and a number is never given twice, even after its version is
    # deleted: `tales:3` means one checkpoint forever, or nothing.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    """An immutable version: a checkpoint under a name. Retention never deletes a checkpoint named here."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"), index=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelAlias(Base):
    """A movable name for one version of a model (`champion`, `staging`); `latest` is implicit."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases_model_alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ModelEvent(Base):
    """Every change to a model's versions and aliases, so "what did tales@champion mean on Tuesday" has
    an answer. Rows are only ever added, never changed."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    # version_created | version_deleted | alias_set | alias_deleted
    action: Mapped[str] = mapped_column(String(20))
    alias: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    old_checkpoint_id: Mapped[int | None] = mapped_column(Integer)
    new_checkpoint_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ModelSession(Base):
    """A text model's state kept between requests (POST /sessions): h | c as float32 bytes, so every
    process reads back bitwise the state another one wrote. `version` counts its updates: each is one
    UPDATE conditioned on the version it read, so two requests never interleave their changes."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # SHA-256 of the bearer token that made it: the caller's sessions, never the token itself.
    owner: Mapped[str] = mapped_column(String(64), index=True)
    # No foreign key: deleting the job deletes the checkpoint, after which the session answers 404
    # (retention keeps a checkpoint a session holds: app/services/retention.py).
    checkpoint_id: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(200))  # the name it was made with, if any
    state: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32, shape (2, L, H)
    dtype: Mapped[str] = mapped_column(String(16))
    num_layers: Mapped[int] = mapped_column(Integer)
    hidden_size: Mapped[int] = mapped_column(Integer)
    characters: Mapped[int] = mapped_column(Integer)  # consumed so far: prompt, appended, generated
    clamps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # pending (models/decode/state.py)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
