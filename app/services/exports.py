"""A job's metric history as files: CSV, and TensorBoard event files (tensorboardX's writer)."""

from __future__ import annotations

import csv
import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.tables import Metric
from app.services.jobs import get_job

CSV_COLUMNS = ("step", "name", "value", "time")
ROWS_PER_FETCH = 5000  # a long job has hundreds of thousands of rows: fetch them in batches


def _history(session: Session, job_id: int) -> Iterator[Metric]:
    query = select(Metric).where(Metric.job_id == job_id).order_by(Metric.step, Metric.name)
    yield from session.scalars(query.execution_options(yield_per=ROWS_PER_FETCH))


def metrics_csv(session: Session, job_id: int) -> str:
    """A header, then one row per (step, name) in step order; time in ISO 8601 UTC."""
    get_job(session, job_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for metric in _history(session, job_id):
        writer.writerow((metric.step, metric.name, repr(metric.value), metric.created_at.isoformat()))
    return buffer.getvalue()


def tensorboard_archive(session: Session, job_id: int) -> bytes:
    """A .tar.gz of `job-<id>/events.out.tfevents.*`: every metric as a scalar at its step and wall time.

    Unpack it and run `tensorboard --logdir .`; several jobs' archives side by side compare as runs.
    """
    from tensorboardX import SummaryWriter

    get_job(session, job_id)
    with tempfile.TemporaryDirectory(prefix="rnnlab-tb-") as tmp:
        run_dir = Path(tmp) / f"job-{job_id}"
        writer = SummaryWriter(logdir=str(run_dir), flush_secs=3600)
        try:
            for metric in _history(session, job_id):
                writer.add_scalar(
                    metric.name, metric.value, global_step=metric.step, walltime=metric.created_at.timestamp()
                )
        finally:
            writer.close()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(run_dir, arcname=run_dir.name)
    return buffer.getvalue()
