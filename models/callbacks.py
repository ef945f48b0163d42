"""How the training loop talks to its caller.

The loop knows nothing about databases, Celery or HTTP (minGPT's trainer does the same):
everything that leaves it goes through these hooks, so one loop serves tests, benchmarks,
the CLI and the worker.
"""

from __future__ import annotations

from typing import Any


class TrainingCallbacks:
    """Base class with no-op hooks; subclass and override what you need."""

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Training metrics (every `log_every` steps) or validation metrics (every `eval_every`)."""

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        """A checkpoint dict (see models.checkpoint); `is_best` by validation loss."""

    def on_sample(self, step: int, temperature: float, text: str) -> None:
        """A training-time text sample; temperature 0 is greedy."""

    def should_stop(self) -> bool:
        """Asked once per step; True stops the loop cooperatively after a final checkpoint."""
        return False
