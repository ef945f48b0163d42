"""`JobRecorder`: the training loop's callbacks for a job, writing what the loop reports under the lease.

Metrics, samples and checkpoints go to the database through the lease's recorders
(app/services/lease.py), each in its own transaction. Once per `poll_seconds`, `on_step` renews the
lease with a heartbeat that also reports the loop's step and the training speed, and reads back
whether a cancel was requested. `should_stop` does no I/O (see models/callbacks.py): it reads what
the last heartbeat found, and whether the worker is shutting down (`interrupted`), which stops the
loop too, so that the job can be given back with its final checkpoint.

A write that finds the database unreachable is retried with backoff for up to `retry_seconds` (the
lease): training pauses rather than fails while PostgreSQL restarts, and nothing is skipped. A write
that finds the lease gone raises `LeaseLost`, which ends the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from app.core.db_retry import retry_db
from app.core.settings import DEFAULT_KEEP_CHECKPOINTS
from app.services import lease
from models.callbacks import TrainingCallbacks

_T = TypeVar("_T")


class JobRecorder(TrainingCallbacks):
    """Training callbacks that write to the database and stop on cancel or worker shutdown."""

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
        self.cancelled = False  # what the latest heartbeat read
        self._rate: float | None = None
        # The last heartbeat's time and step (the run's start before the first): the speed is measured
        # between two heartbeats.
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
            lambda s: lease.record_metrics(s, self.job_id, self.token, step=step, metrics=metrics),
        )

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        self._write(
            f"checkpoint at step {step}",
            lambda s: lease.record_checkpoint(
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
            lambda s: lease.record_sample(
                s, self.job_id, self.token, step=step, temperature=temperature, text=text
            ),
        )

    def on_step(self, step: int) -> None:
        """Once per `poll_seconds`: heartbeat with this step and the speed, and read a cancel request."""
        now = monotonic()
        if now - self._polled_at < self.poll_seconds:
            return
        rate = (step - self._polled_step) / (now - self._polled_at)
        # Smoothed so the ETA does not jump with every validation pass.
        self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
        self._polled_at, self._polled_step = now, step
        rate_now = self._rate
        self.cancelled = self._write(
            "heartbeat",
            lambda s: lease.heartbeat(s, self.job_id, self.token, step=step, steps_per_second=rate_now),
        )

    @property
    def interrupted(self) -> bool:
        """The worker is shutting down: the job stops, to be given back to the queue."""
        return self.interrupted_by()

    def should_stop(self) -> bool:
        # A shutdown is seen before the very next step (a flag read, no I/O); a cancel by the heartbeat.
        return self.interrupted or self.cancelled
