"""What the metrics scrape reads about jobs: how many per status, and how fast the running ones go."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.job_status import JobStatus
from app.core.tables import Job


def job_counts(session: Session) -> dict[JobStatus, int]:
    """Number of jobs per status (every status present, zero when none)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    counts = dict.fromkeys(JobStatus, 0)
    counts.update({status: n for status, n in rows})
    return counts


def running_jobs(session: Session) -> list[tuple[int, int, float | None]]:
    """(job id, step, steps/s) of each running job, as its worker last wrote them."""
    query = select(Job.id, Job.step, Job.steps_per_second).where(Job.status == JobStatus.RUNNING)
    return [(job_id, step, rate) for job_id, step, rate in session.execute(query.order_by(Job.id))]
