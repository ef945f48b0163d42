"""A curriculum over palindrome length: the length training batches have, and when it grows.

Short palindromes are learnable from scratch; what a net learns there (keep the first digit, read
it out at the end) carries over to longer ones, which from scratch sit at chance for a long time
(Bengio et al. 2009, "Curriculum learning"; Zaremba & Sutskever 2014, "Learning to execute").

Policy: training starts at `start` digits. Steps are counted in windows of `window` steps at the
current length; at the end of each window, if the training accuracy over all of its examples
reached `threshold`, the length grows by `step` (never past `target`, the config's input_length)
and a new window starts. "Recent accuracy" is thus the last full window's, measured on the batches
the model trained on. Once at `target` the curriculum is done.

Plain data and policy, no clock and no model: the training loop reports each step's correct count
(`observe`), asks for the `length` of the next batch, and stores `state_dict()` in checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch


class Curriculum:
    """The current training length and the window being counted."""

    def __init__(self, start: int, target: int, step: int, threshold: float, window: int) -> None:
        if not 1 <= start <= target:
            raise ValueError(f"the curriculum must start within 1..{target}, got {start}")
        if step < 1 or window < 1 or not 0 < threshold <= 1:
            raise ValueError(f"bad curriculum: step={step}, window={window}, threshold={threshold}")
        self.target = target
        self.step = step
        self.threshold = threshold
        self.window = window
        self.length = start
        self._reset_window()

    def _reset_window(self) -> None:
        # A device tensor once a step is observed: summed without waiting for the GPU, read once per window.
        self.correct: torch.Tensor | int = 0
        self.examples = 0
        self.steps = 0

    @property
    def done(self) -> bool:
        return self.length >= self.target

    def observe(self, correct: torch.Tensor, examples: int) -> None:
        """Count one training step at the current length: `correct` of `examples` predictions right."""
        if self.done:
            return
        self.correct = self.correct + correct
        self.examples += examples
        self.steps += 1
        if self.steps >= self.window:  # >=: a resumed run may have a smaller window
            if int(self.correct) >= self.threshold * self.examples:
                self.length = min(self.length + self.step, self.target)
            self._reset_window()

    def state_dict(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "correct": int(self.correct),
            "examples": self.examples,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A resumed run may have a shorter input_length than the checkpoint's: never train past it.
        self.length = min(int(state["length"]), self.target)
        self.correct = int(state["correct"])
        self.examples = int(state["examples"])
        self.steps = int(state["steps"])
