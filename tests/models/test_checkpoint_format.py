"""Formats 1 (architecture under "model_config") and 2 (no task_state), as stored by earlier versions,
still load and resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from models.checkpoint import (
    CHECKPOINT_KEYS,
    FORMAT_VERSION,
    check_checkpoint,
    from_bytes,
    load_model,
    to_bytes,
)
from models.data import make_data
from models.train import TrainResult, train


def as_format_2(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as format 2 wrote it: no task_state (no run had a curriculum)."""
    assert ckpt["task_state"] is None
    return {k: v for k, v in ckpt.items() if k != "task_state"} | {"format": 2}


def as_format_1(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint as format 1 wrote it: format 2's contents, the architecture named "model_config"."""
    return {("model_config" if k == "architecture" else k): v for k, v in as_format_2(ckpt).items()} | {
        "format": 1
    }


def test_format_1_bytes_load_as_the_current_format(palindrome_run: TrainResult) -> None:
    current = palindrome_run.final_checkpoint
    old = as_format_1(current)
    assert "architecture" not in old and old["format"] == 1

    loaded = from_bytes(to_bytes(old))
    assert tuple(loaded) == CHECKPOINT_KEYS and loaded["format"] == FORMAT_VERSION == 3
    assert loaded["architecture"] == current["architecture"] and loaded["task_state"] is None
    inputs = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3, 4, 5]]), 10).float()
    with torch.no_grad():
        assert torch.equal(load_model(old)(inputs)[0], load_model(current)(inputs)[0])


def test_the_upgrade_leaves_the_callers_dict_alone(palindrome_run: TrainResult) -> None:
    old = as_format_1(palindrome_run.final_checkpoint)
    upgraded = check_checkpoint(old)
    assert upgraded is not old and old["format"] == 1 and "model_config" in old
    assert check_checkpoint(upgraded) is upgraded  # the current format is returned as it is


def test_a_format_1_text_checkpoint_resumes_exactly_like_its_upgrade(
    make_text_config, small_text: str, text_run: TrainResult
) -> None:
    saved = text_run.final_checkpoint
    config = make_text_config(train_steps=saved["step"] + 6)
    data = make_data(config, small_text)
    from_old = train(config, data, resume=from_bytes(to_bytes(as_format_1(saved))))
    from_current = train(config, data, resume=saved)
    assert from_old.step == saved["step"] + 6
    assert from_old.final_checkpoint["format"] == FORMAT_VERSION
    for name, weights in from_current.final_checkpoint["model"].items():
        assert torch.equal(from_old.final_checkpoint["model"][name], weights), name


def test_a_format_1_dict_is_accepted_by_train_directly(make_palindrome_config, palindrome_run) -> None:
    saved = palindrome_run.final_checkpoint
    config = make_palindrome_config(hidden_size=64, batch_size=128, train_steps=saved["step"] + 2)
    result = train(config, make_data(config), resume=as_format_1(saved))
    assert result.step == saved["step"] + 2


def test_a_format_1_checkpoint_without_its_model_config_is_refused(palindrome_run: TrainResult) -> None:
    old = as_format_1(palindrome_run.final_checkpoint)
    del old["model_config"]
    with pytest.raises(ValueError, match="checkpoint is missing architecture"):
        from_bytes(to_bytes(old))


def test_format_2_loads_with_no_task_state_and_resumes_like_its_upgrade(
    make_palindrome_config, palindrome_run: TrainResult
) -> None:
    saved = palindrome_run.final_checkpoint
    old = as_format_2(saved)
    loaded = from_bytes(to_bytes(old))
    assert tuple(loaded) == CHECKPOINT_KEYS and loaded["format"] == 3 and loaded["task_state"] is None
    assert old["format"] == 2 and "task_state" not in old  # the caller's dict is left alone
    config = make_palindrome_config(hidden_size=64, batch_size=128, train_steps=saved["step"] + 3)
    from_old = train(config, make_data(config), resume=old)
    from_current = train(config, make_data(config), resume=saved)
    for name, weights in from_current.final_checkpoint["model"].items():
        assert torch.equal(from_old.final_checkpoint["model"][name], weights), name
