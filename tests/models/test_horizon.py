"""memory_horizon: ||d log p / d e(x_{t-k})|| against k, on hand-set models whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.char_lstm import CharLSTM
from models.horizon import memory_horizon, window_offsets
from models.horizon_limits import MAX_LAG, MAX_WINDOWS

V, E, H = 12, 6, 10
GATE_SATURATION = 1e4  # sigmoid(-1e4) is exactly 0.0 in float32, sigmoid(1e4) exactly 1.0


def _ids(n: int = 400) -> torch.Tensor:
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(3))


def _model(forget: str | None = None, *, recurrent: bool = True) -> CharLSTM:
    """A one-layer char_lstm; `forget` "shut" or "open" pins its forget gate (gate order i, f, g, o);
    recurrent=False zeroes W_hh, so the past reaches the present only through the cell c."""
    torch.manual_seed(0)
    model = CharLSTM(V, E, H, num_layers=1)
    weight_ih, weight_hh, bias_ih, bias_hh = (
        getattr(model.lstm, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    with torch.no_grad():
        if not recurrent:
            weight_hh.zero_()
        if forget is not None:
            weight_ih[H : 2 * H].zero_()
            weight_hh[H : 2 * H].zero_()
            bias_hh[H : 2 * H].zero_()
            bias_ih[H : 2 * H].fill_(-GATE_SATURATION if forget == "shut" else GATE_SATURATION)
    return model


def test_a_model_that_cannot_see_the_past_has_no_gradient_beyond_k0() -> None:
    """Forget gate shut and no recurrent weights: h(t) is a function of x(t) alone."""
    horizon = memory_horizon(_model("shut", recurrent=False), _ids(), max_lag=8, windows=16)
    assert horizon.k == list(range(9)) and horizon.windows == 16
    assert horizon.mean_norm[0] > 0
    assert horizon.mean_norm[1:] == [0.0] * 8


def test_a_forget_gate_held_open_keeps_the_gradient() -> None:
    """Forget gate open (c(t) = c(t-1) + i g), no recurrent weights: every character read stays in c,
    so the gradient reaches all the way back, and not much weaker than at k = 1."""
    horizon = memory_horizon(_model("open", recurrent=False), _ids(), max_lag=8, windows=16)
    assert all(norm > 0 for norm in horizon.mean_norm)
    assert min(horizon.mean_norm[1:]) > 0.1 * horizon.mean_norm[1], horizon.mean_norm


def test_the_batched_pass_equals_one_window_at_a_time() -> None:
    """The sum-over-rows trick: one backward pass gives each row's own gradient."""
    model = _model()
    ids = _ids()
    max_lag, windows = 6, 5
    horizon = memory_horizon(model, ids, max_lag=max_lag, windows=windows)
    per_window = []
    for start in window_offsets(len(ids), max_lag, windows):
        window = ids[start : start + max_lag + 2]
        x = model.embedding(window[None, :-1]).detach().requires_grad_()  # (1, K + 1, E)
        out, _ = model.lstm(x)
        log_p = F.log_softmax(model.head(out[:, -1]), -1)[0, window[-1]]
        (grad,) = torch.autograd.grad(log_p, x)
        per_window.append(grad[0].norm(dim=-1).flip(0))  # k = 0 first
    expected = torch.stack(per_window).mean(0)
    assert horizon.mean_norm == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-9)
    assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched
    assert model.training  # its mode restored


def test_windows_are_even_distinct_and_bounded() -> None:
    assert window_offsets(100, 8, 4) == [0, 30, 60, 90]  # 91 starts
    assert window_offsets(12, 8, 10) == [0, 1, 2]  # fewer starts than windows: every one
    assert window_offsets(10, 8, 1) == [0]
    with pytest.raises(ValueError, match="fewer than max_lag"):
        window_offsets(9, 8, 4)
    with pytest.raises(ValueError, match="max_lag"):
        window_offsets(10_000, MAX_LAG + 1, 4)
    with pytest.raises(ValueError, match="windows"):
        window_offsets(10_000, 8, MAX_WINDOWS + 1)
    with pytest.raises(ValueError, match="windows"):
        window_offsets(10_000, 8, 0)


def test_the_mean_log_probability_is_of_the_predicted_characters() -> None:
    horizon = memory_horizon(_model(), _ids(), max_lag=4, windows=8)
    # An untrained model is near uniform over V characters.
    assert math.isclose(horizon.mean_log_prob, -math.log(V), rel_tol=0.1)


def test_a_model_without_an_embedding_is_refused() -> None:
    from models.registry import build_model

    rnn = build_model({"type": "rnn", "input_size": 10, "hidden_size": 8, "num_classes": 10})
    with pytest.raises(ValueError, match="text models"):
        memory_horizon(rnn, _ids(), max_lag=2, windows=2)


def test_dropout_is_off_while_measuring() -> None:
    """A two-layer model with dropout between its layers, left in training mode: the measurement runs
    in eval mode (dropout would mix noise into the rows), so it is the same twice."""
    torch.manual_seed(0)
    model = CharLSTM(V, E, H, num_layers=2, dropout=0.5)
    model.train()
    first = memory_horizon(model, _ids(), max_lag=6, windows=8)
    assert memory_horizon(model, _ids(), max_lag=6, windows=8) == first
    assert model.training
