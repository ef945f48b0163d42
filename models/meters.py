"""Training-time measurements for the loop: metric sums kept on the device, and a training-only clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class TrainingMeter:
    """Training metrics summed since the last record, on the device: a step never waits for the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.steps = 0
        self.targets = 0
        self.lr = 0.0

    def add(
        self, loss: torch.Tensor, correct: torch.Tensor, targets: int, grad_norm: torch.Tensor, lr: float
    ) -> None:
        self.loss += loss
        self.correct += correct
        self.grad_norm += grad_norm
        self.steps += 1
        self.targets += targets
        self.lr = lr

    def summary(self, seconds: float, batch_size: int, chars_per_step: int | None) -> dict[str, float]:
        """Means over the steps since the last summary (lr: the last step's), then start afresh."""
        seconds = max(seconds, 1e-9)
        values = {
            "loss": self.loss.item() / self.steps,
            "accuracy": self.correct.item() / self.targets,
            "grad_norm": self.grad_norm.item() / self.steps,
            "lr": self.lr,
            "examples_per_s": batch_size * self.steps / seconds,
        }
        if chars_per_step is not None:
            values["chars_per_s"] = chars_per_step * self.steps / seconds
        self._reset()
        return values


class Stopwatch:
    """Training time only: what runs inside `paused()` (evaluation, samples, checkpoints) is left out.

    CUDA runs asynchronously, so the clock synchronises before every reading; without that it would
    time the kernel launches, not the work.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.elapsed = 0.0
        self._started = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> None:
        self.elapsed += self._now() - self._started

    def lap(self) -> float:
        """Seconds counted since the last lap (call while stopped)."""
        seconds, self.elapsed = self.elapsed, 0.0
        return seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()
