"""Jobs as the API sees them: create (and enqueue), read, list, cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.errors import CheckpointIncompatible, CheckpointNotFound, JobNotCancellable, JobNotFound
from app.core.job_status import JobStatus
from app.core.queue import Enqueue
from app.core.tables import Checkpoint, Job, utcnow
from app.schemas.resources import AttemptOut, JobDetail, JobOut, JobPage
from app.schemas.training import SERVICE_FIELDS, PalindromeTrainRequest, TextTrainRequest
from app.services import admission, attempts, datasets, routing, supervision
from app.services.transitions import move, rows_updated
from models.config import PalindromeConfig, TextConfig


def create_job(
    session: Session,
    *,
    request: PalindromeTrainRequest | TextTrainRequest,
    enqueue: Enqueue,
    queues: routing.Queues,
    memory_budget: int,
    max_queued_jobs: int,
) -> Job:
    """Validate references, admit the job (size, queue room), store it on the queue its device routes
    it to, then hand its id to that queue."""
    admission.check_queue_room(session, limit=max_queued_jobs, adding=1)
    queue = routing.router(session, queues)(request.device)
    job = new_job(session, request=request, queue=queue, memory_budget=memory_budget)
    session.add(job)
    session.commit()
    enqueue_jobs(session, [job.id], enqueue=enqueue)
    return job


def new_job(
    session: Session, *, request: PalindromeTrainRequest | TextTrainRequest, queue: str, memory_budget: int
) -> Job:
    """The job row for a request, after checking its references and that it fits a worker; not added
    to the session, so a caller can store many (an experiment's grid) in one transaction."""
    config = request.model_dump(exclude=SERVICE_FIELDS)
    dataset_id = None
    vocab_size = None
    if isinstance(request, TextTrainRequest):
        if request.dataset_id is None:
            dataset = datasets.ensure_builtin(session)
        else:
            dataset = datasets.get_dataset(session, request.dataset_id)
        dataset_id = dataset.id
        vocab_size = len(dataset.vocab)
    if request.resume_from is not None:
        checkpoint = session.get(Checkpoint, request.resume_from)
        if checkpoint is None:
            raise CheckpointNotFound(request.resume_from, field="resume_from")
        check_resumable(checkpoint, request, dataset_vocab=dataset.vocab if dataset_id else None)
        # A resumed text model keeps the checkpoint's vocabulary (a superset of the dataset's).
        vocab_size = len(checkpoint.vocab) if checkpoint.vocab else vocab_size
    admission.check_fits_worker(_training_config(request), vocab_size=vocab_size, budget=memory_budget)
    return Job(
        task=request.task,
        model=request.model,
        status=JobStatus.QUEUED,
        config=config,
        dataset_id=dataset_id,
        resume_from=request.resume_from,
        total_steps=request.train_steps,
        latest_metrics={},
        queue=queue,
    )


def enqueue_jobs(session: Session, job_ids: Sequence[int], *, enqueue: Enqueue) -> None:
    """Hand stored jobs to the queue in order. The rows come first (the outbox): jobs the broker does
    not take now stay queued, unsent, and a worker's sweep sends them once it is back."""
    supervision.dispatch_all(session, job_ids, enqueue=enqueue)


def check_resumable(
    checkpoint: Checkpoint, request: PalindromeTrainRequest | TextTrainRequest, *, dataset_vocab: str | None
) -> None:
    """A checkpoint can seed a job when the training loop would accept it (dropout may differ)."""
    from models.checkpoint import resume_mismatch
    from models.registry import architecture_for

    def incompatible(why: str) -> CheckpointIncompatible:
        return CheckpointIncompatible(f"resume_from: checkpoint {checkpoint.id}: {why}")

    config = _training_config(request)
    vocab = checkpoint.vocab or []
    expected = architecture_for(config, vocab_size=len(vocab) if request.task == "text" else None)
    saved = {
        "task": checkpoint.task,
        "architecture": checkpoint.architecture,
        "train_config": checkpoint.train_config,
        "step": checkpoint.step,
    }
    problem = resume_mismatch(saved, config, expected)
    if problem is not None:
        raise incompatible(problem)
    if dataset_vocab is not None:
        missing = sorted(set(dataset_vocab) - set(vocab))
        if missing:
            raise incompatible(f"its vocabulary lacks the dataset characters {''.join(missing[:20])!r}")
    # The loop would accept step == train_steps and train nothing; a queued job should do something.
    if checkpoint.step >= request.train_steps:
        raise incompatible(f"it is at step {checkpoint.step}; train_steps must be larger to continue")


def _training_config(request: PalindromeTrainRequest | TextTrainRequest) -> PalindromeConfig | TextConfig:
    """The request without its service fields: the config the training loop will run."""
    config_cls = TextConfig if request.task == "text" else PalindromeConfig
    return config_cls(**request.model_dump(exclude=SERVICE_FIELDS))


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def list_jobs(
    session: Session,
    *,
    status: JobStatus | None,
    task: str | None,
    limit: int,
    offset: int,
    experiment_id: int | None = None,
) -> JobPage:
    query = select(Job)
    if experiment_id is not None:
        query = query.where(Job.experiment_id == experiment_id)
    if status is not None:
        query = query.where(Job.status == status)
    if task is not None:
        query = query.where(Job.task == task)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    jobs = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return JobPage(items=[job_out(j) for j in jobs], total=total, limit=limit, offset=offset)


def job_out(job: Job) -> JobOut:
    eta = None
    if job.status == JobStatus.RUNNING and job.steps_per_second:
        eta = max(job.total_steps - job.step, 0) / job.steps_per_second
    data: dict[str, Any] = {c: getattr(job, c) for c in JobOut.model_fields if hasattr(job, c)}
    data |= {"progress": min(job.step / job.total_steps, 1.0), "eta_seconds": eta}
    return JobOut.model_validate(data)


def job_detail(session: Session, job: Job, *, lease_seconds: float) -> JobDetail:
    """`job_out` plus its attempts and, for a queued job nobody will take, why it waits."""
    return JobDetail(
        **job_out(job).model_dump(),
        attempt_history=[AttemptOut.model_validate(a) for a in attempts.attempts_of(session, job.id)],
        waiting_reason=routing.waiting_reason(session, job, lease_seconds=lease_seconds),
    )


def cancel_job(session: Session, job_id: int) -> Job:
    """Queued: cancelled now. Running: flag it; the loop stops at its next step and saves a checkpoint."""
    job = get_job(session, job_id)
    cancelled = move(
        session, Job.id == job_id, from_=[JobStatus.QUEUED], to=JobStatus.CANCELLED, cancel_requested=True
    )
    session.commit()
    if not cancelled:
        # A running job keeps its status until its worker sees the flag and stops.
        flagged = rows_updated(
            session,
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(cancel_requested=True, updated_at=utcnow()),
        )
        session.commit()
        if flagged != 1:
            session.refresh(job)
            raise JobNotCancellable(job_id, job.status)
    session.refresh(job)
    return job
