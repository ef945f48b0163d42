"""The learning timeline of a text job: the same prompt and random_seed sampled from each kept
checkpoint, beside its step and the metrics recorded at (or last before) that step.

The sampler is `models.sample.generate`, the one-stream reference that `/generate`'s engine is held
bitwise equal to: a row's text is what `POST /generate` gives for that checkpoint with the same
prompt, length, temperature and random_seed.
"""

from __future__ import annotations

import bisect
import math
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, JobHasNoCheckpoint, WrongTask
from app.core.tables import Metric
from app.schemas.timeline import TimelineOut, TimelineParams, TimelineRow
from app.services import checkpoints
from app.services.jobs import get_job


def timeline(session: Session, job_id: int, *, params: TimelineParams) -> TimelineOut:
    from models.checkpoint import from_bytes, load_model, load_vocabulary
    from models.data import UnknownCharacters
    from models.sample import generate

    job = get_job(session, job_id)
    if job.task != "text":
        raise WrongTask(
            f"job {job_id} is a {job.task} job: it has no text to sample; "
            f"see GET /jobs/{job_id}/gradient-flow for what its model learned"
        )
    kept = checkpoints.list_for_job(session, job_id)
    if not kept:
        raise JobHasNoCheckpoint(job_id)
    random_seed = secrets.randbits(32) if params.random_seed is None else params.random_seed
    val_loss = _recorded(session, job_id, "val_loss")
    accuracy = _recorded(session, job_id, "accuracy")
    rows = []
    for summary in checkpoints.spread(kept, params.checkpoints):
        ckpt = from_bytes(checkpoints.get_checkpoint(session, summary.id, with_data=True).data)
        vocab = load_vocabulary(ckpt)
        assert vocab is not None  # a text checkpoint always carries its vocabulary
        missing = vocab.missing(params.prompt)
        if missing:
            raise InvalidInput(("query", "prompt"), str(UnknownCharacters(missing)))
        text = generate(
            load_model(ckpt), vocab, params.prompt, params.length, params.temperature, random_seed=random_seed
        ).text
        loss_step, loss = _at_or_before(val_loss, summary.step)
        accuracy_step, train_accuracy = _at_or_before(accuracy, summary.step)
        rows.append(
            TimelineRow(
                checkpoint_id=summary.id,
                step=summary.step,
                val_bits_per_char=None if loss is None else loss / math.log(2),
                val_loss_step=loss_step,
                train_accuracy=train_accuracy,
                accuracy_step=accuracy_step,
                text=text,
            )
        )
    return TimelineOut(
        job_id=job_id,
        prompt=params.prompt,
        length=params.length,
        temperature=params.temperature,
        random_seed=random_seed,
        kept_checkpoints=len(kept),
        rows=rows,
    )


def _recorded(session: Session, job_id: int, name: str) -> list[tuple[int, float]]:
    query = select(Metric.step, Metric.value).where(Metric.job_id == job_id, Metric.name == name)
    return [(step, value) for step, value in session.execute(query.order_by(Metric.step))]


def _at_or_before(points: list[tuple[int, float]], step: int) -> tuple[int | None, float | None]:
    """The point recorded at `step`, else the latest one before it: a checkpoint may be saved at a
    step where no evaluation ran (checkpoint_every and eval_every differ)."""
    i = bisect.bisect_right(points, step, key=lambda point: point[0])
    return points[i - 1] if i else (None, None)
