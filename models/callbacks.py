"""How the training loop talks to its caller.

The loop knows nothing about databases, Celery or HTTP (minGPT's trainer does the same):
everything that leaves it goes through these hooks, so one loop serves tests, benchmarks,
the CLI and the worker.

The loop hands every hook the step it is at, so a caller never counts steps itself. Stopping is
split in two, so that the loop's question has no side effects:

- `on_step(step)` runs after every optimizer step (and the reports due at it) and is where periodic
  work goes, I/O included: the worker renews its lease and reads a cancel request there, a benchmark
  checks its wall-clock cap. It keeps what it found in the callbacks' own state.
- `should_stop()` is asked before every step, the first included. It does no I/O and changes
  nothing: it reads state (what `on_step` found, a flag a signal handler set), so asking it twice
  gives the same answer.
"""

from __future__ import annotations

from typing import Any


class TrainingCallbacks:
    """Base class with no-op hooks; subclass and override what you need."""

    def on_step(self, step: int) -> None:
        """After each optimizer step; `step` is the steps done in total (a resumed run goes on from the
        checkpoint's step). Called after that step's metrics, samples and checkpoint, if any were due."""

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Training metrics (every `log_every` steps) or validation metrics (every `eval_every`)."""

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        """A checkpoint dict (see models.checkpoint); `is_best` by validation loss."""

    def on_sample(self, step: int, temperature: float, text: str) -> None:
        """A training-time text sample; temperature 0 is greedy."""

    def should_stop(self) -> bool:
        """Asked before each step; True stops the loop cooperatively after a final checkpoint.

        A read of state, no I/O (see the module docstring): the I/O belongs in `on_step`."""
        return False
