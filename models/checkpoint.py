"""Checkpoints: plain dicts of tensors and builtins, never a pickled module (nanoGPT's layout).

    {"format": 3, "task", "architecture", "train_config", "vocab", "step", "model", "optimizer",
     "scheduler", "rng", "best_val_loss", "metrics", "task_state"}

`task_state` is the task's own training state: {"curriculum": {...}} for a palindrome run with a
curriculum (models/curriculum.py), else None. Format 2 had no `task_state`; format 1 also stored
the architecture under "model_config". `check_checkpoint` (and so `from_bytes`, `load` and
everything that reads a checkpoint) upgrades both, so checkpoints stored before still load and
resume.

Everything in it is a tensor, dict, list, tuple, str, int, float, bool or None, so it loads with
`torch.load(..., weights_only=True)`: a checkpoint uploaded by a user cannot run code when read.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.config import PalindromeConfig, TextConfig
from models.data import Vocabulary
from models.registry import build_model

FORMAT_VERSION = 3
CHECKPOINT_KEYS = (
    "format",
    "task",
    "architecture",
    "train_config",
    "vocab",
    "step",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "best_val_loss",
    "metrics",
    "task_state",
)


class CheckpointError(ValueError):
    """Bytes or a dict that are not a usable checkpoint, or one that does not fit the run resuming it."""


def check_checkpoint(ckpt: object) -> dict[str, Any]:
    """`ckpt` in the layout of this format version, or `CheckpointError`.

    A format-1 or format-2 checkpoint comes back as a new, upgraded dict (the caller's is left as
    it was); use the returned dict, not the argument.
    """
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"a checkpoint is a dict, got {type(ckpt).__name__}")
    if ckpt.get("format") == 1:
        ckpt = _upgrade_from_format_1(ckpt)
    if ckpt.get("format") == 2:
        ckpt = _upgrade_from_format_2(ckpt)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint is missing {', '.join(missing)}")
    if ckpt["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {ckpt['format']!r} is not supported (expected 1 to {FORMAT_VERSION})"
        )
    return ckpt


def _upgrade_from_format_1(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Format 1 named the architecture "model_config"; nothing else changed."""
    upgraded = {("architecture" if key == "model_config" else key): value for key, value in ckpt.items()}
    upgraded["format"] = 2
    return upgraded


def _upgrade_from_format_2(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Format 2 had no `task_state`: no run before it had a curriculum."""
    return {**ckpt, "format": 3, "task_state": None}


# Dropout shapes no parameter: a run may resume a checkpoint with more or less of it.
RESUMABLE_MODEL_DIFFERENCES = frozenset({"dropout"})


def resume_mismatch(
    saved: Mapping[str, Any], config: PalindromeConfig | TextConfig, architecture: Mapping[str, Any]
) -> str | None:
    """Why checkpoint `saved` cannot continue as a run of `config` (of `architecture`), or None.

    Reads only `task`, `architecture`, `train_config` and `step`: the API asks it of a checkpoint's
    stored metadata before it queues a job, and the training loop of the checkpoint itself.
    """
    if saved["task"] != config.task:
        return f"cannot resume a {saved['task']!r} checkpoint as a {config.task!r} run"
    saved_architecture = saved["architecture"]
    keys = sorted((set(saved_architecture) | set(architecture)) - RESUMABLE_MODEL_DIFFERENCES, key=str)
    diffs = [
        f"{k}: {saved_architecture.get(k)!r} in the checkpoint, {architecture.get(k)!r} now"
        for k in keys
        if saved_architecture.get(k) != architecture.get(k)
    ]
    if diffs:
        return f"the checkpoint's model does not match the config ({'; '.join(diffs)})"
    saved_optimizer = saved["train_config"].get("optimizer")
    if saved_optimizer != config.optimizer:
        # Its state (momenta, squared averages) has another layout and another meaning.
        return (
            f"the checkpoint was trained with {saved_optimizer!r} and cannot resume with {config.optimizer!r}"
        )
    if saved["step"] > config.train_steps:
        return f"the checkpoint is at step {saved['step']}, beyond train_steps={config.train_steps}"
    return None


def to_bytes(ckpt: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, Any]:
    """Bytes from `to_bytes` -> checkpoint dict with CPU tensors; anything else raises `CheckpointError`."""
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    # torch.load raises whatever its unpickler, zip reader or tensor rebuild hits (UnpicklingError,
    # RuntimeError, EOFError, ...); to the caller all of them mean one thing: not a checkpoint.
    except Exception as e:
        raise CheckpointError(f"not a readable checkpoint: {_first_useful_line(e)}") from e
    return check_checkpoint(ckpt)


def save(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temporary file, then rename), so a crash never leaves half a checkpoint."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(ckpt))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> dict[str, Any]:
    return from_bytes(Path(path).read_bytes())


def load_model(ckpt: dict[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """The checkpoint's model on `device`, in eval mode."""
    ckpt = check_checkpoint(ckpt)
    try:
        model = build_model(ckpt["architecture"])
    except ValueError as e:
        raise CheckpointError(f"checkpoint has an unusable architecture: {e}") from e
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        raise CheckpointError(f"checkpoint weights do not fit its architecture: {e}") from e
    return model.to(device).eval()


def load_vocabulary(ckpt: dict[str, Any]) -> Vocabulary | None:
    """The text vocabulary stored with the checkpoint, or None for a palindrome checkpoint."""
    ckpt = check_checkpoint(ckpt)
    if ckpt["vocab"] is None:
        return None
    try:
        return Vocabulary(ckpt["vocab"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint has an unusable vocabulary: {e}") from e


def _first_useful_line(error: Exception) -> str:
    # weights_only failures start with advice to load with weights_only=False, which is exactly
    # what a service must not do with uploaded bytes; the reason is on the WeightsUnpickler line.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line
    return lines[0] if lines else type(error).__name__
