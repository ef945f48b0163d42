"""hidden_gradient_norms: ||dL/dh(t)|| for every step, for every palindrome model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.gradient_flow import hidden_gradient_norms
from models.registry import build_model
from models.rnn import RNN

B, T, H = 8, 12, 16


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    digits = torch.randint(0, 10, (B, T))
    return F.one_hot(digits, 10).float(), digits[:, 0]


@pytest.mark.parametrize("model_type", ["rnn", "lstm", "phased_lstm"])
def test_one_finite_non_negative_norm_per_step(model_type: str) -> None:
    torch.manual_seed(0)
    model = build_model({"type": model_type, "input_size": 10, "hidden_size": H, "num_classes": 10})
    norms = hidden_gradient_norms(model, *_batch())
    assert len(norms) == T
    assert all(isinstance(n, float) and math.isfinite(n) and n >= 0 for n in norms)
    assert norms[-1] > 0  # the last step feeds the loss directly
    assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched


def test_matches_retain_grad_on_the_hidden_states() -> None:
    torch.manual_seed(0)
    model = build_model({"type": "lstm", "input_size": 10, "hidden_size": H, "num_classes": 10})
    inputs, targets = _batch()
    logits, _, hidden = model.forward_with_hidden(inputs)
    for h in hidden:
        h.retain_grad()
    F.cross_entropy(logits[:, -1], targets).backward()
    expected = [h.grad.norm().item() for h in hidden]
    assert hidden_gradient_norms(model, inputs, targets) == pytest.approx(expected, rel=1e-5)


def test_vanilla_rnn_gradient_vanishes() -> None:
    torch.manual_seed(0)
    model = RNN(10, H)
    with torch.no_grad():
        model.W_hh.mul_(0.1)  # small recurrent weights: each step back multiplies the gradient down
    norms = hidden_gradient_norms(model, *_batch())
    assert norms[0] < norms[-1]
    assert norms[0] < 1e-3 * norms[-1]


def test_model_without_hidden_states_is_rejected() -> None:
    model = build_model(
        {
            "type": "char_lstm",
            "vocab_size": 5,
            "embedding_size": 4,
            "hidden_size": 4,
            "num_layers": 1,
            "dropout": 0.0,
        }
    )
    with pytest.raises(ValueError, match="forward_with_hidden"):
        hidden_gradient_norms(model, torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, dtype=torch.long))
