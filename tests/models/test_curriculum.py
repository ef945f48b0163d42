"""The palindrome length curriculum: its policy, its config checks, training at shorter lengths with
every palindrome model, evaluation at the target length, and bitwise resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from models.checkpoint import from_bytes, to_bytes
from models.config import PalindromeConfig, TaskConfig
from models.curriculum import Curriculum
from models.data import PalindromeData, make_data
from models.tasks import make_task
from models.train import train


def _window(curriculum: Curriculum, correct_per_step: int, examples: int = 10) -> None:
    for _ in range(curriculum.window):
        curriculum.observe(torch.tensor(correct_per_step), examples)


def test_the_length_grows_after_a_window_at_the_threshold_and_stops_at_the_target() -> None:
    curriculum = Curriculum(start=3, target=10, step=4, threshold=0.9, window=3)
    _window(curriculum, 8)  # 80 % < 90 %: stays
    assert curriculum.length == 3 and curriculum.steps == 0
    curriculum.observe(torch.tensor(10), 10)
    curriculum.observe(torch.tensor(10), 10)
    assert curriculum.length == 3 and curriculum.steps == 2  # mid-window: no decision yet
    curriculum.observe(torch.tensor(7), 10)  # 27 / 30 = 90 %: exactly the threshold promotes
    assert curriculum.length == 7 and curriculum.steps == 0
    _window(curriculum, 10)
    assert curriculum.length == 10 and curriculum.done  # 7 + 4 capped at the target
    _window(curriculum, 0)
    assert curriculum.length == 10  # done: nothing counted any more
    assert curriculum.state_dict() == {"length": 10, "correct": 0, "examples": 0, "steps": 0}


def test_the_state_round_trips_and_a_smaller_target_caps_it() -> None:
    curriculum = Curriculum(start=2, target=20, step=3, threshold=0.5, window=4)
    _window(curriculum, 9)
    curriculum.observe(torch.tensor(6), 10)
    state = curriculum.state_dict()
    assert state == {"length": 5, "correct": 6, "examples": 10, "steps": 1}
    copy = Curriculum(start=2, target=20, step=3, threshold=0.5, window=4)
    copy.load_state_dict(state)
    assert copy.state_dict() == state
    shorter = Curriculum(start=2, target=4, step=3, threshold=0.5, window=4)
    shorter.load_state_dict(state)
    assert shorter.length == 4


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"input_length": 10, "curriculum_start": 11}, "curriculum_start", "longer than input_length=10"),
        ({"curriculum_start": 0}, "curriculum_start", "greater than or equal to 1"),
        ({"curriculum_threshold": 0}, "curriculum_threshold", "greater than 0"),
        ({"curriculum_threshold": 1.01}, "curriculum_threshold", "less than or equal to 1"),
        ({"curriculum_step": 0}, "curriculum_step", "greater than or equal to 1"),
        ({"curriculum_window": 0}, "curriculum_window", "greater than or equal to 1"),
    ],
)
def test_a_bad_curriculum_names_its_field(body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        TypeAdapter(TaskConfig).validate_python({"task": "palindrome", **body})
    (error,) = excinfo.value.errors()
    assert error["loc"] == ("palindrome", field) and message in error["msg"]


def test_a_curriculum_on_a_text_job_says_it_applies_to_palindromes() -> None:
    with pytest.raises(ValidationError) as excinfo:
        TypeAdapter(TaskConfig).validate_python({"task": "text", "curriculum_start": 5, "curriculum_step": 2})
    (error,) = excinfo.value.errors()
    assert "curriculum_start, curriculum_step: the curriculum applies to palindrome jobs only" in error["msg"]


def test_the_defaults_mean_no_curriculum() -> None:
    config = PalindromeConfig()
    assert config.curriculum_start is None
    task = make_task(config, make_data(config))
    assert task.state_dict() is None and task.training_metrics() == {}
    # At input_length: a start equal to the target is allowed (and is no curriculum in effect).
    assert PalindromeConfig(input_length=7, curriculum_start=7).curriculum_start == 7


def test_training_batches_follow_the_curriculum_and_evaluation_stays_at_the_target(
    make_palindrome_config,
) -> None:
    config = make_palindrome_config(input_length=9, curriculum_start=3)
    task = make_task(config, make_data(config))
    inputs, targets = task.train_batch(torch.Generator().manual_seed(0), torch.device("cpu"))
    assert inputs.shape == (config.batch_size, 3, 10) and targets.shape == (config.batch_size,)
    # The target is the first digit of the palindrome (its last one): the short batch is a real task.
    assert torch.equal(inputs[:, 0].argmax(-1), targets)
    for eval_inputs, _ in task.eval_batches(torch.device("cpu")):
        assert eval_inputs.shape[1] == 9
    with pytest.raises(ValueError, match="training length must be in 1..9"):
        PalindromeData(9).train_batch(4, torch.Generator(), length=10)


@pytest.mark.parametrize("model", ["rnn", "lstm", "phased_lstm"])
def test_every_palindrome_model_trains_through_the_curriculum(
    make_palindrome_config, recorder, model: str
) -> None:
    # A window of one step and a threshold any step passes: the length grows by 2 every step.
    config = make_palindrome_config(
        model=model,
        input_length=8,
        curriculum_start=1,
        curriculum_step=2,
        curriculum_threshold=1e-9,
        curriculum_window=1,
        train_steps=6,
        log_every=1,
        eval_every=3,
    )
    result = train(config, make_data(config), recorder)
    lengths = [m["train_length"] for _, m in recorder.metrics if "loss" in m]
    assert lengths == [1, 3, 5, 7, 8, 8]
    assert result.final_checkpoint["task_state"] == {
        "curriculum": {"length": 8, "correct": 0, "examples": 0, "steps": 0}
    }
    assert [s for s, m in recorder.metrics if "val_accuracy" in m] == [3, 6]
    assert result.metrics["train_length"] == 8


def test_no_train_length_metric_without_a_curriculum(make_palindrome_config, recorder) -> None:
    config = make_palindrome_config(train_steps=5)
    result = train(config, make_data(config), recorder)
    assert all("train_length" not in m for _, m in recorder.metrics)
    assert result.final_checkpoint["task_state"] is None


def test_resume_with_a_curriculum_is_bitwise_identical(make_palindrome_config, make_recorder) -> None:
    """2N steps straight against N, checkpoint (through bytes), N more: same weights, data RNG,
    curriculum state and recorded train_length curve. The split lies mid-window, after promotions."""
    config = make_palindrome_config(
        input_length=12,
        curriculum_start=2,
        curriculum_step=3,
        curriculum_threshold=0.12,
        curriculum_window=3,
        log_every=1,
        eval_every=4,
    )
    data = make_data(config)
    n = 10
    straight_recorder, first_recorder, resumed_recorder = make_recorder(), make_recorder(), make_recorder()
    straight = train(config.model_copy(update={"train_steps": 2 * n}), data, straight_recorder)
    first = train(config.model_copy(update={"train_steps": n}), data, first_recorder)
    ckpt = from_bytes(to_bytes(first.final_checkpoint))
    assert ckpt["task_state"]["curriculum"]["steps"] == n % config.curriculum_window  # mid-window
    assert ckpt["task_state"]["curriculum"]["length"] > config.curriculum_start  # promoted already
    resumed = train(config.model_copy(update={"train_steps": 2 * n}), data, resumed_recorder, resume=ckpt)

    a, b = straight.final_checkpoint, resumed.final_checkpoint
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["rng"]["data"], b["rng"]["data"])
    assert a["task_state"] == b["task_state"]

    def curve(recorder: Any) -> list[tuple[int, float]]:
        return [(s, m["train_length"]) for s, m in recorder.metrics if "train_length" in m]

    assert curve(straight_recorder) == curve(first_recorder) + curve(resumed_recorder)
    assert len({length for _, length in curve(straight_recorder)}) >= 3  # the curve shows the curriculum
