"""What a job needs before its loop starts: its config, its data and the checkpoint it resumes from.

All three come from the job's rows: the stored config (validated again: it is the config the loop
runs), the dataset's text for a text job, and the checkpoint to resume from. That is the job's own
latest checkpoint when an earlier attempt left one (the worker died or shut down), else the
checkpoint the user asked to start from (`resume_from`), else none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from app.core.tables import Checkpoint, Dataset, Job
from models.config import PalindromeConfig, TaskConfig, TextConfig

if TYPE_CHECKING:
    from models.data import PalindromeData, TextData

_task_config: TypeAdapter[PalindromeConfig | TextConfig] = TypeAdapter(TaskConfig)


@dataclass(frozen=True)
class LoadedRun:
    config: PalindromeConfig | TextConfig
    data: PalindromeData | TextData
    resume: dict[str, Any] | None  # a checkpoint dict (models.checkpoint), or None to start afresh

    @property
    def start_step(self) -> int:
        """Where this attempt's timeline starts: the resumed checkpoint's step, else 0."""
        return int(self.resume["step"]) if self.resume is not None else 0


def load_run(session: Session, job_id: int) -> LoadedRun:
    """The job's run; its own latest checkpoint wins over `resume_from`."""
    # torch is imported when a job runs, not when the worker (or a test) imports this module.
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
        # A resumed text job keeps the checkpoint's vocabulary: its embedding rows are indexed by it.
        if resume is not None and resume.get("vocab"):
            vocab = Vocabulary(resume["vocab"])
    return LoadedRun(config, make_data(config, text, vocab=vocab), resume)
