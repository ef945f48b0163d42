"""The training flags come from the training configs, and make the bodies the API expects (no server)."""

from __future__ import annotations

import argparse

import pytest

from client.flags import CONFIG_FIELDS, TASKS, add_training_flags, sweep_axes, sweep_item, training_body
from models.config import PalindromeConfig, TextConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_training_flags(parser)
    return parser.parse_args(argv)


def test_every_config_field_is_a_flag_and_every_task_a_choice() -> None:
    fields = set(PalindromeConfig.model_fields) | set(TextConfig.model_fields)
    assert set(CONFIG_FIELDS) == fields - {"task"}
    assert TASKS == ["palindrome", "text"]


def test_the_body_has_the_flags_given_as_json_values() -> None:
    args = parse("--task", "text", "--hidden-size", "64", "--learning-rate", "1e-3", "--model", "lstm")
    assert training_body(args) == {"task": "text", "hidden_size": 64, "learning_rate": 0.001, "model": "lstm"}
    args = parse("--task", "text", "--random-seed", "7", "--dataset-id", "3", "--resume-from", "9")
    assert training_body(args) == {"task": "text", "seed": 7, "dataset_id": 3, "resume_from": 9}


def test_sweep_axes_take_flag_or_field_names() -> None:
    axes = sweep_axes(["model=rnn, lstm", "input-length=5,10", "random-seed=1,2"])
    assert axes == {"model": ["rnn", "lstm"], "input_length": [5, 10], "seed": [1, 2]}
    assert sweep_item("model=rnn") == "model=rnn"
    for bad in ("model", "model=", "model= "):
        with pytest.raises(argparse.ArgumentTypeError, match="expected AXIS=V1,V2"):
            sweep_item(bad)
