"""Admission at `POST /train`: refuse a job the workers cannot run (too large) or take now (queue full)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import JobTooLarge, QueueFull
from app.core.job_status import JobStatus
from app.core.settings import Settings
from app.core.tables import Job
from models.config import PalindromeConfig, TextConfig

# A queued job is taken within seconds to hours; a client told to come back in a minute is not idle long.
QUEUE_FULL_RETRY_AFTER_S = 60
# Without RNNLAB_WORKER_MEMORY_BYTES a job may use this share of the machine's memory.
DEFAULT_MEMORY_FRACTION = 0.5
GIB = 2**30


def machine_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Physical memory: MemTotal from /proc/meminfo (Linux), else the page count times the page size."""
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024  # reported in kB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def worker_memory_budget(settings: Settings) -> int:
    if settings.worker_memory_bytes is not None:
        return settings.worker_memory_bytes
    return int(machine_memory_bytes() * DEFAULT_MEMORY_FRACTION)


def check_fits_worker(config: PalindromeConfig | TextConfig, *, vocab_size: int | None, budget: int) -> None:
    """JobTooLarge (422, naming the fields to shrink) when the estimated peak is over `budget` bytes."""
    from models.memory import estimate_training_bytes, fields_to_shrink

    need = estimate_training_bytes(config, vocab_size)
    if need > budget:
        raise JobTooLarge(
            fields_to_shrink(config),
            f"training this config needs about {need / GIB:.1f} GiB at peak, more than the worker budget "
            f"of {budget / GIB:.1f} GiB (RNNLAB_WORKER_MEMORY_BYTES); shrink these fields",
        )


def check_queue_room(session: Session, *, limit: int, adding: int) -> None:
    """QueueFull (429) unless `adding` more jobs keep the queue within `limit`. A soft limit: two
    requests racing may both get in."""
    queued = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)) or 0
    if queued + adding > limit:
        raise QueueFull(limit, retry_after_s=QUEUE_FULL_RETRY_AFTER_S)
