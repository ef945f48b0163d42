"""The learning-rate schedule of a run: step decay (the course's), or cosine, each after a warm-up.

- `step` with no warm-up is torch's StepLR, exactly as every run before these options had it, so old
  checkpoints resume onto the same scheduler state.
- Otherwise a LambdaLR multiplies the configured rate by
      warm-up:  min(1, (t + 1) / warmup_steps)      (Goyal et al. 2017: large early steps of an
                                                    adaptive optimizer wreck a fresh net)
      step:     lr_decay ** (t // lr_decay_every)
      cosine:   0.5 (1 + cos(pi t / train_steps))   (Loshchilov & Hutter 2017, SGDR without restarts:
                                                    the rate anneals to 0 at the last step)
  where t counts optimizer steps. The factors depend only on t and the config, so the scheduler's
  state_dict (its step count) is all a checkpoint needs.
"""

from __future__ import annotations

import math

import torch

from models.config import PalindromeConfig, TextConfig


def make_scheduler(
    config: PalindromeConfig | TextConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.lr_schedule == "step" and config.warmup_steps == 0:
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(config, t))


def lr_factor(config: PalindromeConfig | TextConfig, t: int) -> float:
    """The multiple of `learning_rate` that optimizer step t + 1 uses."""
    warmup = min(1.0, (t + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_schedule == "cosine":
        return warmup * 0.5 * (1 + math.cos(math.pi * min(t, config.train_steps) / config.train_steps))
    return warmup * config.lr_decay ** (t // config.lr_decay_every)
