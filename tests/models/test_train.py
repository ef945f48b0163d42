"""The training loop: it learns, reports through callbacks, stops on request and resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from models.__main__ import main as cli
from models.callbacks import TrainingCallbacks
from models.checkpoint import CHECKPOINT_KEYS, CheckpointError, from_bytes, load, to_bytes
from models.config import PalindromeConfig, TextConfig
from models.data import make_data
from models.train import train
from tests.data import GRIMMS_EXCERPT

TRAIN_METRICS = {"loss", "accuracy", "grad_norm", "lr", "examples_per_s"}
VAL_METRICS = {"val_loss", "val_accuracy"}


def test_lstm_solves_palindromes_of_length_5(palindrome_run) -> None:
    assert palindrome_run.metrics["val_accuracy"] == 1.0
    assert palindrome_run.best_val_loss < 0.05


def test_text_loss_falls(make_text_config, small_text: str, recorder) -> None:
    config = make_text_config(train_steps=100, log_every=10, eval_every=100)
    result = train(config, make_data(config, small_text), recorder)

    train_losses = [m["loss"] for _, m in recorder.metrics if "loss" in m]
    vocab_size = len(result.final_checkpoint["vocab"])
    assert train_losses[0] > math.log(vocab_size) - 1.0  # starts near uniform
    assert train_losses[-1] < train_losses[0] - 1.0
    # Below the unigram entropy of English letters (~2.9 nats): it learned which letters follow which.
    assert result.metrics["val_loss"] < 2.7


def test_callbacks_receive_metrics_checkpoints_and_samples(
    make_text_config, small_text: str, recorder
) -> None:
    config = make_text_config(train_steps=12, log_every=4, eval_every=6, checkpoint_every=5, sample_every=6)
    result = train(config, make_data(config, small_text), recorder)

    training = [(s, m) for s, m in recorder.metrics if "loss" in m]
    validation = [(s, m) for s, m in recorder.metrics if "val_loss" in m]
    assert [s for s, _ in training] == [4, 8, 12]
    assert all(set(m) == TRAIN_METRICS | {"chars_per_s"} for _, m in training)
    assert all(
        m["chars_per_s"] == pytest.approx(m["examples_per_s"] * config.seq_length) for _, m in training
    )
    assert all(
        0 <= m["accuracy"] <= 1 and m["grad_norm"] > 0 and m["lr"] == config.learning_rate
        for _, m in training
    )
    # Every eval_every, plus at each checkpoint (for is_best); the final one is at step 12.
    assert [s for s, _ in validation] == [5, 6, 10, 12]
    assert all(set(m) == VAL_METRICS for _, m in validation)

    assert [(s, final) for s, _, _, final in recorder.checkpoints] == [(5, False), (10, False), (12, True)]
    for _, ckpt, _, _ in recorder.checkpoints:
        assert tuple(ckpt) == CHECKPOINT_KEYS
    assert result.final_checkpoint is recorder.checkpoints[-1][1]
    assert set(result.metrics) == TRAIN_METRICS | {"chars_per_s"} | VAL_METRICS

    vocab = set(result.final_checkpoint["vocab"])
    assert [(s, t) for s, t, _ in recorder.samples] == [
        (6, 0.0),
        (6, config.sample_temperature),
        (12, 0.0),
        (12, 0.8),
    ]
    for _, _, text in recorder.samples:
        assert len(text) == config.sample_length and set(text) <= vocab


def test_checkpoints_are_snapshots(make_palindrome_config, recorder) -> None:
    config = make_palindrome_config(train_steps=10, checkpoint_every=5)
    train(config, make_data(config), recorder)
    (_, at_5, _, _), (_, at_10, _, _) = recorder.checkpoints
    # Had the step-5 checkpoint aliased the live parameters, training on would have changed it.
    assert at_5["step"] == 5 and at_10["step"] == 10
    assert not torch.equal(at_5["model"]["W_h"], at_10["model"]["W_h"])


def test_should_stop_cancels_with_a_final_checkpoint(make_palindrome_config, make_recorder) -> None:
    recorder = make_recorder(stop_after=7)
    config = make_palindrome_config(train_steps=50)
    result = train(config, make_data(config), recorder)

    assert result.stopped and result.step == 7
    step, ckpt, _, is_final = recorder.checkpoints[-1]
    assert (step, ckpt["step"], is_final) == (7, 7, True)
    assert "val_loss" in result.metrics  # the stopped model is still evaluated


def test_on_step_gets_every_step_and_should_stop_is_asked_before_each(make_palindrome_config) -> None:
    class Trace(TrainingCallbacks):
        def __init__(self) -> None:
            self.events: list[str] = []

        def on_step(self, step: int) -> None:
            self.events.append(f"step {step}")

        def on_checkpoint(
            self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool
        ) -> None:
            self.events.append(f"checkpoint {step}")

        def should_stop(self) -> bool:
            self.events.append("ask")
            return False

    config = make_palindrome_config(train_steps=6, checkpoint_every=3, eval_every=3, log_every=3)
    first = Trace()
    half = train(config.model_copy(update={"train_steps": 3}), make_data(config), first)
    # A step's reports come before its on_step; the final checkpoint after the last one.
    assert first.events == ["ask", "step 1", "ask", "step 2", "ask", "step 3", "checkpoint 3"]

    resumed = Trace()
    train(config, make_data(config), resumed, resume=half.final_checkpoint)
    # The steps go on from the checkpoint's: the callbacks never count steps themselves.
    assert [e for e in resumed.events if e.startswith("step")] == ["step 4", "step 5", "step 6"]
    assert resumed.events.count("ask") == 3


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "sgd"])
def test_optimizers_and_step_decay(make_palindrome_config, recorder, optimizer: str) -> None:
    config = make_palindrome_config(optimizer=optimizer, train_steps=15, lr_decay=0.5, lr_decay_every=5)
    result = train(config, make_data(config), recorder)
    lrs = [m["lr"] for _, m in recorder.metrics if "lr" in m]
    # The lr used by steps 5, 10 and 15: StepLR halves it after every 5 steps.
    assert lrs == pytest.approx([1e-2, 5e-3, 2.5e-3])
    assert result.final_checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1.25e-3)
    assert math.isfinite(result.metrics["loss"])


def _resume_equivalence(config: PalindromeConfig | TextConfig, data, n: int) -> None:
    straight = train(config.model_copy(update={"train_steps": 2 * n}), data)
    first = train(config.model_copy(update={"train_steps": n}), data)
    ckpt = from_bytes(to_bytes(first.final_checkpoint))
    resumed = train(config.model_copy(update={"train_steps": 2 * n}), data, resume=ckpt)

    assert resumed.step == straight.step == 2 * n
    a, b = straight.final_checkpoint, resumed.final_checkpoint
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["rng"]["data"], b["rng"]["data"])


def test_resume_is_bitwise_identical_palindrome_lstm(make_palindrome_config) -> None:
    config = make_palindrome_config(eval_every=4, log_every=3)
    _resume_equivalence(config, make_data(config), n=10)


@pytest.mark.parametrize("layers, dropout", [(1, 0.0), (2, 0.3)])
def test_resume_is_bitwise_identical_text_char_lstm(
    make_text_config, small_text: str, layers: int, dropout: float
) -> None:
    # With dropout too: torch's RNG state travels in the checkpoint, so the masks are the same.
    config = make_text_config(
        num_layers=layers, dropout=dropout, lr_decay=0.5, lr_decay_every=7, sample_every=4
    )
    _resume_equivalence(config, make_data(config, small_text), n=8)


def test_resume_rejects_an_incompatible_model(make_palindrome_config, palindrome_run) -> None:
    config = make_palindrome_config(hidden_size=16, train_steps=200)
    with pytest.raises(CheckpointError, match="hidden_size: 64 in the checkpoint, 16 now"):
        train(config, make_data(config), resume=palindrome_run.final_checkpoint)
    config = make_palindrome_config(hidden_size=64, model="rnn", train_steps=200)
    with pytest.raises(CheckpointError, match="type: 'lstm' in the checkpoint, 'rnn' now"):
        train(config, make_data(config), resume=palindrome_run.final_checkpoint)


def test_resume_rejects_another_optimizer(make_palindrome_config, palindrome_run) -> None:
    # palindrome_run trained with adam; rmsprop keeps other state under other names.
    config = make_palindrome_config(hidden_size=64, optimizer="rmsprop", train_steps=200)
    with pytest.raises(CheckpointError, match="trained with 'adam' and cannot resume with 'rmsprop'"):
        train(config, make_data(config), resume=palindrome_run.final_checkpoint)


def test_resume_may_change_dropout(make_text_config, text_run, small_text: str) -> None:
    # Dropout shapes no parameter, so a run may continue a checkpoint with more of it.
    saved = text_run.final_checkpoint
    assert saved["architecture"]["dropout"] == 0.0
    config = make_text_config(dropout=0.5, train_steps=saved["step"] + 5)
    resumed = train(config, make_data(config, small_text), resume=saved)
    assert resumed.step == saved["step"] + 5
    assert resumed.final_checkpoint["architecture"]["dropout"] == 0.5


def test_resume_rejects_a_vocabulary_that_does_not_cover_the_data(
    make_text_config, text_run, small_text
) -> None:
    config = make_text_config(train_steps=100)
    data = make_data(config, small_text + "§ and € are new\n")
    with pytest.raises(CheckpointError, match="does not cover the corpus.*'§'.*'€'"):
        train(config, data, resume=text_run.final_checkpoint)
    with pytest.raises(CheckpointError, match="cannot resume a 'text' checkpoint as a 'palindrome' run"):
        palindrome = PalindromeConfig(device="cpu")
        train(palindrome, make_data(palindrome), resume=text_run.final_checkpoint)


def test_resume_uses_the_checkpoint_vocabulary_for_a_smaller_corpus(
    make_text_config, text_run, small_text
) -> None:
    # A corpus using fewer characters gets a smaller vocabulary of its own; resuming must keep the
    # checkpoint's ids, or the embedding rows would mean different characters.
    subset = "".join(ch for ch in small_text if ch.islower() or ch in " \n")
    config = make_text_config(train_steps=text_run.step + 2)
    assert len(make_data(config, subset).vocab) < len(text_run.final_checkpoint["vocab"])
    result = train(config, make_data(config, subset), resume=text_run.final_checkpoint)
    assert result.final_checkpoint["vocab"] == text_run.final_checkpoint["vocab"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_an_error(make_palindrome_config) -> None:
    config = make_palindrome_config(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(config, make_data(config))


def test_cli_trains_and_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "text.pt"
    flags = ["--hidden-size", "16", "--num-layers", "1", "--seq-length", "10", "--batch-size", "8"]
    corpus = ["--corpus", str(GRIMMS_EXCERPT), "--strip-gutenberg"]
    intervals = ["--log-every", "2", "--eval-every", "4", "--device", "cpu"]
    assert (
        cli(["train", "--task", "text", *corpus, *flags, *intervals, "--train-steps", "4", "--out", str(out)])
        == 0
    )
    assert load(out)["step"] == 4
    assert cli(["train", *corpus, "--resume", str(out), "--train-steps", "6", "--out", str(out)]) == 0
    assert load(out)["step"] == 6
    printed = capsys.readouterr().out
    assert "step       2  loss" in printed and "val_loss" in printed and "final checkpoint" in printed

    assert (
        cli(
            [
                "sample",
                "--checkpoint",
                str(out),
                "--seed-text",
                "Once",
                "--length",
                "25",
                "--random-seed",
                "1",
            ]
        )
        == 0
    )
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Once") and len(line) == 29

    with pytest.raises(SystemExit) as excinfo:
        cli(["train", "--task", "palindrome", "--hidden-size", "0"])
    assert excinfo.value.code == 2
    assert "hidden_size" in capsys.readouterr().err
