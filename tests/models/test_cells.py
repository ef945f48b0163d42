"""The hand-written RNN and LSTM against the course equations, autograd and nn.LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.lstm import LSTM, LSTMSequence
from models.rnn import RNN

B, T, D, H, C = 3, 6, 4, 5, 10


def np_sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def numpy_rnn(p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """h(t) = tanh(W_hx x(t) + W_hh h(t-1) + b_h); p(t) = W_ph h(t) + b_p, batch-first, float64."""
    logits = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["W_hx"].T + h @ p["W_hh"].T + p["b_h"])
        logits.append(h @ p["W_ph"].T + p["b_p"])
    return np.stack(logits, axis=1), h


def numpy_lstm(
    p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The course's LSTM equations gate by gate; the fused matrices are split in the documented order."""
    W_ix, W_fx, W_gx, W_ox = np.split(p["W_x"], 4)
    W_ih, W_fh, W_gh, W_oh = np.split(p["W_h"], 4)
    b_i, b_f, b_g, b_o = np.split(p["b"], 4)
    logits = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        g = np.tanh(x_t @ W_gx.T + h @ W_gh.T + b_g)
        i = np_sigmoid(x_t @ W_ix.T + h @ W_ih.T + b_i)
        f = np_sigmoid(x_t @ W_fx.T + h @ W_fh.T + b_f)
        o = np_sigmoid(x_t @ W_ox.T + h @ W_oh.T + b_o)
        c = g * i + c * f
        h = np.tanh(c) * o
        logits.append(h @ p["W_ph"].T + p["b_p"])
    return np.stack(logits, axis=1), h, c


def numpy_params(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy() for name, p in model.named_parameters()}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_rnn_matches_numpy_equations() -> None:
    model = RNN(D, H, C).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    p = numpy_params(model)
    for state, h_init in ((None, np.zeros((B, H))), (h0, h0.numpy())):
        logits, h = model(x, state)
        ref_logits, ref_h = numpy_rnn(p, x.numpy(), h_init)
        np.testing.assert_allclose(logits.detach().numpy(), ref_logits, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h.detach().numpy(), ref_h, rtol=1e-12, atol=1e-12)


def test_lstm_matches_numpy_equations() -> None:
    model = LSTM(D, H, C).double()
    with torch.no_grad():  # non-zero biases everywhere, so a mixed-up gate order cannot hide
        model.b.normal_()
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0, c0 = torch.randn(2, B, H, dtype=torch.float64)
    p = numpy_params(model)
    for state, h_init, c_init in (
        (None, np.zeros((B, H)), np.zeros((B, H))),
        ((h0, c0), h0.numpy(), c0.numpy()),
    ):
        ref_logits, ref_h, ref_c = numpy_lstm(p, x.numpy(), h_init, c_init)
        for logits, (h, c) in (model(x, state), model.forward_with_hidden(x, state)[:2]):
            np.testing.assert_allclose(logits.detach().numpy(), ref_logits, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(h.detach().numpy(), ref_h, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(c.detach().numpy(), ref_c, rtol=1e-12, atol=1e-12)


def test_lstm_forget_bias_is_a_constructor_argument() -> None:
    b_f = LSTM(D, H, forget_bias=2.5).b[H : 2 * H]
    assert torch.equal(b_f, torch.full((H,), 2.5))
    assert torch.equal(LSTM(D, H).b[H : 2 * H], torch.ones(H))  # default 1.0


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_sequence_gradcheck(with_state: bool) -> None:
    """The hand-derived backward pass of the fast LSTM path against finite differences."""
    B_, T_, D_, H_ = 2, 4, 3, 2

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    x, W_x, b, W_h = leaf(B_, T_, D_), leaf(4 * H_, D_), leaf(4 * H_), leaf(4 * H_, H_)
    state = (leaf(B_, H_), leaf(B_, H_)) if with_state else (None, None)
    assert torch.autograd.gradcheck(LSTMSequence.apply, (x, W_x, b, W_h, *state))


@pytest.mark.parametrize("model_class", [RNN, LSTM])
def test_cells_gradcheck(model_class: type[nn.Module]) -> None:
    """Gradients of the whole model (inputs and every parameter) against finite differences."""
    model = model_class(3, 2, 4).double()
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)

    def logits(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x,))[0]

    assert torch.autograd.gradcheck(logits, (x, *params))


def test_lstm_fast_path_and_traced_path_have_equal_gradients() -> None:
    model = LSTM(D, H, C).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    state = tuple(torch.randn(2, B, H, dtype=torch.float64, requires_grad=True))
    leaves = [*model.parameters(), *state]
    grads = []
    for logits, (h, c) in (model(x, state), model.forward_with_hidden(x, state)[:2]):
        loss = (logits**2).sum() + (h * c).sum()  # reaches every output, including the final state
        grads.append(torch.autograd.grad(loss, leaves))
    for fast, traced in zip(*grads, strict=True):
        torch.testing.assert_close(fast, traced, rtol=1e-10, atol=1e-12)


def test_lstm_agrees_with_nn_lstm() -> None:
    """Copy nn.LSTM's weights across: same gate order (i, f, g, o); its two biases add up to our b."""
    model = LSTM(D, H, C).double()
    ref = nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        model.W_x.copy_(ref.weight_ih_l0)
        model.W_h.copy_(ref.weight_hh_l0)
        model.b.copy_(ref.bias_ih_l0 + ref.bias_hh_l0)
    x = torch.randn(B, T, D, dtype=torch.float64)
    state = tuple(torch.randn(2, B, H, dtype=torch.float64))
    ref_out, (ref_h, ref_c) = ref(x, (state[0][None], state[1][None]))  # nn.LSTM: (L, B, H)
    logits, (h, c), hidden = model.forward_with_hidden(x, state)
    torch.testing.assert_close(torch.stack(hidden, dim=1), ref_out)
    torch.testing.assert_close(logits, ref_out @ model.W_ph.T + model.b_p)
    fast_logits, (fast_h, fast_c) = model(x, state)
    torch.testing.assert_close(fast_logits, logits)
    for ours in (h, fast_h):
        torch.testing.assert_close(ours, ref_h[0])
    for ours in (c, fast_c):
        torch.testing.assert_close(ours, ref_c[0])


@pytest.mark.parametrize("model_class", [RNN, LSTM])
def test_state_carries_across_windows(model_class: type[nn.Module]) -> None:
    """Running two halves with the state handed over equals running the whole sequence."""
    model = model_class(D, H, C).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    whole, state_whole = model(x)
    first, state = model(x[:, : T // 2])
    second, state_halves = model(x[:, T // 2 :], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(state_halves, state_whole)


def test_lstm_learns_to_remember_the_first_digit() -> None:
    """A few hundred fast-path steps on a fixed batch: the backward pass is good enough to train on."""
    digits = torch.randint(0, 10, (64, 8))
    inputs, targets = F.one_hot(digits, 10).float(), digits[:, 0]
    model = LSTM(10, 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(inputs)[0][:, -1], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = (model(inputs)[0][:, -1].argmax(-1) == targets).float().mean().item()
    assert accuracy > 0.9, f"loss {loss.item():.3f}, accuracy {accuracy:.2f}"
