"""Learning-rate schedules: the rates the loop really used (its `lr` metric), and a bitwise resume."""

from __future__ import annotations

import math

import pytest
import torch

from models.data import make_data
from models.schedule import lr_factor, make_scheduler
from models.train import train


def _used_lrs(recorder) -> list[float]:
    return [m["lr"] for _, m in recorder.metrics if "lr" in m]


def test_cosine_with_warm_up_uses_the_rates_of_the_formula(make_palindrome_config, recorder) -> None:
    config = make_palindrome_config(
        train_steps=20, log_every=1, learning_rate=0.01, lr_schedule="cosine", warmup_steps=4
    )
    train(config, make_data(config), recorder)
    expected = [
        0.01 * min(1, (t + 1) / 4) * 0.5 * (1 + math.cos(math.pi * t / 20)) for t in range(20)
    ]  # fmt: skip
    assert _used_lrs(recorder) == pytest.approx(expected)
    assert _used_lrs(recorder)[-1] < 0.0001  # annealed to ~0 at the last step


def test_warm_up_then_step_decay(make_palindrome_config, recorder) -> None:
    config = make_palindrome_config(
        train_steps=12, log_every=1, learning_rate=0.01, warmup_steps=2, lr_decay=0.5, lr_decay_every=5
    )
    train(config, make_data(config), recorder)
    assert _used_lrs(recorder) == pytest.approx(
        [0.005, 0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.005, 0.005, 0.0025, 0.0025]
    )


def test_the_default_stays_torch_step_lr(make_palindrome_config) -> None:
    """Checkpoints written before the schedule options hold a StepLR state: they resume onto one."""
    config = make_palindrome_config()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    assert isinstance(make_scheduler(config, optimizer), torch.optim.lr_scheduler.StepLR)
    assert lr_factor(config.model_copy(update={"lr_decay": 0.5, "lr_decay_every": 3}), 7) == 0.25


def test_resume_is_bitwise_identical_with_cosine_and_warm_up(
    make_text_config, make_recorder, small_text: str
) -> None:
    """The cosine runs to the config's train_steps, so the first half is a run of the whole length
    stopped half way (as a cancelled or crashed job is), not a shorter run."""
    config = make_text_config(
        train_steps=16, lr_schedule="cosine", warmup_steps=5, optimizer="adam", carry_state=True
    )
    data = make_data(config, small_text)
    straight = train(config, data).final_checkpoint
    half = train(config, data, make_recorder(stop_after=8)).final_checkpoint
    assert half["step"] == 8
    resumed = train(config, data, resume=half).final_checkpoint
    for name in straight["model"]:
        assert torch.equal(straight["model"][name], resumed["model"][name]), name


@pytest.mark.parametrize("field, value", [("lr_schedule", "linear"), ("warmup_steps", -1)])
def test_bad_schedules_are_refused_naming_the_field(
    make_palindrome_config, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=field):
        make_palindrome_config(**{field: value})
