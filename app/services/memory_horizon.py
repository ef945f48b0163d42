"""The memory horizon of a text job's model (models/horizon.py) on a text: the job's validation split
by default, the way gradient flow (app/services/gradient_flow.py) is the palindrome jobs' picture."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, WrongTask
from app.core.tables import Job
from app.schemas.analysis import MemoryHorizonOut, MemoryHorizonParams
from app.services import checkpoints, datasets
from app.services.jobs import get_job

if TYPE_CHECKING:
    import torch

    from models.data import Vocabulary


def check_text_job(job: Job) -> None:
    if job.task != "text":
        raise WrongTask(
            f"job {job.id} is a {job.task} job: the memory horizon is measured on text models; "
            f"for a palindrome model see GET /jobs/{job.id}/gradient-flow"
        )


def memory_horizon(
    session: Session, job_id: int, *, params: MemoryHorizonParams, checkpoint_id: int | None
) -> MemoryHorizonOut:
    from models.checkpoint import from_bytes, load_model, load_vocabulary
    from models.horizon import memory_horizon as measure

    job = get_job(session, job_id)
    check_text_job(job)
    checkpoint = checkpoints.of_job(session, job, checkpoint_id)
    ckpt = from_bytes(checkpoint.data)
    vocab = load_vocabulary(ckpt)
    assert vocab is not None  # a text checkpoint always carries its vocabulary
    ids = _text_ids(session, job, vocab, params.text)
    if len(ids) < params.max_lag + 2:
        field = "max_lag" if params.text is None else "text"
        raise InvalidInput(
            ("query", field),
            f"the text has {len(ids)} characters, fewer than max_lag + 2 = {params.max_lag + 2}; "
            f"use a longer text or a max_lag of at most {max(len(ids) - 2, 0)}",
        )
    horizon = measure(load_model(ckpt), ids, max_lag=params.max_lag, windows=params.windows)
    return MemoryHorizonOut(
        job_id=job_id,
        model=job.model,
        checkpoint_id=checkpoint.id,
        step=checkpoint.step,
        text="validation" if params.text is None else "query",
        text_length=len(ids),
        max_lag=params.max_lag,
        windows=horizon.windows,
        k=horizon.k,
        mean_norm=horizon.mean_norm,
        mean_log_prob=horizon.mean_log_prob,
    )


def _text_ids(session: Session, job: Job, vocab: Vocabulary, text: str | None) -> torch.Tensor:
    """The ids of the query's text, else of the job's validation split (the tail its loop validated on)."""
    from models.config import TextConfig
    from models.data import TextData, UnknownCharacters

    if text is not None:
        missing = vocab.missing(text)
        if missing:
            raise InvalidInput(("query", "text"), str(UnknownCharacters(missing)))
        return vocab.encode(text)
    assert job.dataset_id is not None  # every text job has one (the built-in corpus by default)
    corpus = datasets.get_dataset(session, job.dataset_id).text
    return TextData(corpus, TextConfig(**job.config).val_fraction, vocab=vocab).val_ids
