"""bfloat16 training (`TextConfig.precision`): the forward pass under autocast, everything kept in
float32, the run reproducible and resumable bitwise, and it still learns."""

from __future__ import annotations

import pytest
import torch

from models.config import TextConfig
from models.data import make_data
from models.train import train
from tests.models.test_train import _resume_equivalence


def test_bfloat16_keeps_weights_and_optimizer_state_in_float32(make_text_config, small_text: str) -> None:
    config = make_text_config(precision="bfloat16", optimizer="adam", train_steps=6)
    checkpoint = train(config, make_data(config, small_text)).final_checkpoint
    assert {t.dtype for t in checkpoint["model"].values()} == {torch.float32}
    moments = [
        v for state in checkpoint["optimizer"]["state"].values() for k, v in state.items() if k != "step"
    ]
    assert moments and {t.dtype for t in moments} == {torch.float32}


def test_bfloat16_changes_the_arithmetic_and_still_learns(make_text_config, small_text: str) -> None:
    config = make_text_config(train_steps=40, eval_every=40, learning_rate=1e-2, optimizer="adam")
    data = make_data(config, small_text)
    full = train(config, data)
    half = train(config.model_copy(update={"precision": "bfloat16"}), data)
    a, b = full.final_checkpoint["model"], half.final_checkpoint["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the setting is really applied
    untrained = train(config.model_copy(update={"train_steps": 1}), data).metrics["val_loss"]
    # Both learn, and to about the same loss (bfloat16 rounds the activations, not the weights).
    assert half.metrics["val_loss"] < untrained - 0.3
    assert half.metrics["val_loss"] == pytest.approx(full.metrics["val_loss"], abs=0.15)


def test_bfloat16_is_reproducible_and_resumes_bitwise(make_text_config, small_text: str) -> None:
    config = make_text_config(precision="bfloat16", carry_state=True)
    data = make_data(config, small_text)
    first = train(config, data).final_checkpoint["model"]
    again = train(config, data).final_checkpoint["model"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    _resume_equivalence(config, data, n=8)


def test_an_unknown_precision_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="precision"):
        TextConfig(precision="float16")  # type: ignore[arg-type]
