"""Phased LSTM: the time gate against hand-computed values, and the cell around it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM, time_gate

TAU, SHIFT, R_ON, ALPHA = 10.0, 2.0, 0.2, 1e-3

# (t, k) worked out by hand for tau = 10, s = 2, r_on = 0.2: phi = ((t - 2) mod 10) / 10, the gate
# rises over phi in [0, 0.1), falls over [0.1, 0.2) and leaks alpha * phi for the rest of the cycle.
HAND_COMPUTED = [
    (2.0, 0.0),  # phi = 0: start of the open phase
    (2.5, 0.5),  # phi = 0.05: rising, 2 * 0.05 / 0.2
    (3.0, 1.0),  # phi = 0.1 = r_on / 2: the peak, where rising meets falling
    (3.5, 0.5),  # phi = 0.15: falling, 2 - 2 * 0.15 / 0.2
    (3.9, 0.1),  # phi = 0.19: falling, 2 - 1.9
    (4.0, 2e-4),  # phi = 0.2 = r_on: closed, alpha * 0.2
    (7.0, 5e-4),  # phi = 0.5: closed, alpha * 0.5
    (11.9, 9.9e-4),  # phi = 0.99: closed, end of the cycle
    (12.0, 0.0),  # phi wraps around to 0 after one period
    (12.5, 0.5),  # ... and the cycle repeats
    (1.0, 9e-4),  # t < s: (1 - 2) mod 10 = 9, phi = 0.9
    (-7.5, 0.5),  # negative time stamps wrap the same way: (-9.5) mod 10 = 0.5
]


def test_time_gate_matches_hand_computed_values() -> None:
    t = torch.tensor([t for t, _ in HAND_COMPUTED], dtype=torch.float64)
    expected = torch.tensor([k for _, k in HAND_COMPUTED], dtype=torch.float64)
    torch.testing.assert_close(time_gate(t, TAU, SHIFT, R_ON, ALPHA), expected, rtol=0, atol=1e-12)


def test_time_gate_is_continuous_at_the_edges() -> None:
    eps = 1e-9
    for edge, value in ((SHIFT, 0.0), (SHIFT + R_ON * TAU / 2, 1.0), (SHIFT + R_ON * TAU, 0.0)):
        t = torch.tensor([edge - eps, edge + eps], dtype=torch.float64)
        k = time_gate(t, TAU, SHIFT, R_ON, alpha=0.0)
        torch.testing.assert_close(k, torch.full((2,), value, dtype=torch.float64), rtol=0, atol=1e-6)


def test_time_gate_broadcasts_per_unit() -> None:
    tau = torch.tensor([10.0, 4.0], dtype=torch.float64)
    shift = torch.tensor([2.0, 0.0], dtype=torch.float64)
    r_on = torch.tensor([0.2, 0.5], dtype=torch.float64)
    t = torch.tensor([[2.5], [3.0]], dtype=torch.float64)  # (T, 1) against (H,) -> (T, H)
    # unit 1 (tau 4, s 0, r_on 0.5): t = 2.5 -> phi = 0.625, closed; t = 3 -> phi = 0.75, closed
    expected = torch.tensor([[0.5, ALPHA * 0.625], [1.0, ALPHA * 0.75]], dtype=torch.float64)
    torch.testing.assert_close(time_gate(t, tau, shift, r_on, ALPHA), expected, rtol=0, atol=1e-12)


def _set_time_parameters(model: PhasedLSTM, tau: float, shift: float, r_on: float) -> None:
    with torch.no_grad():
        model.log_tau.fill_(math.log(tau))
        model.raw_shift.fill_(math.log(math.expm1(shift)))  # softplus^-1
        model.logit_r_on.fill_(math.log(r_on / (1 - r_on)))


def test_parametrisation_gives_the_set_values() -> None:
    model = PhasedLSTM(3, 4).double()
    _set_time_parameters(model, TAU, SHIFT, R_ON)
    for value, expected in ((model.tau, TAU), (model.shift, SHIFT), (model.r_on, R_ON)):
        torch.testing.assert_close(value, torch.full((4,), expected, dtype=torch.float64))


def test_leak_only_in_training_mode() -> None:
    model = PhasedLSTM(3, 4).double()
    _set_time_parameters(model, TAU, SHIFT, R_ON)
    times = torch.tensor([2.5, 7.0], dtype=torch.float64)  # open (phi 0.05), closed (phi 0.5)
    model.train()
    torch.testing.assert_close(
        model.time_gates(times)[:, 0], torch.tensor([0.5, ALPHA * 0.5], dtype=torch.float64)
    )
    model.eval()
    k = model.time_gates(times)
    assert torch.all(k[1] == 0)  # closed phase: exactly 0, no leak
    torch.testing.assert_close(k[0], torch.full((4,), 0.5, dtype=torch.float64))


def test_closed_gate_keeps_the_state_in_eval() -> None:
    model = PhasedLSTM(3, 4).double().eval()
    _set_time_parameters(model, TAU, SHIFT, R_ON)
    state = tuple(torch.randn(2, 2, 4, dtype=torch.float64))
    times = torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)  # all in the closed phase
    _, (h, c) = model(torch.randn(2, 3, 3, dtype=torch.float64), state, times=times)
    torch.testing.assert_close(h, state[0], rtol=0, atol=0)
    torch.testing.assert_close(c, state[1], rtol=0, atol=0)


def test_fully_open_gate_is_the_plain_lstm() -> None:
    """At time stamps where phi = r_on / 2 every unit has k = 1, and the cell is the LSTM of lstm.py."""
    torch.manual_seed(0)
    B, T, D, H = 2, 5, 3, 4
    model = PhasedLSTM(D, H).double()
    _set_time_parameters(model, TAU, SHIFT, R_ON)
    times = SHIFT + R_ON * TAU / 2 + TAU * torch.arange(T, dtype=torch.float64)  # 3, 13, 23, ...
    torch.testing.assert_close(model.time_gates(times), torch.ones(T, H, dtype=torch.float64))
    lstm = LSTM(D, H).double()
    lstm.load_state_dict(model.state_dict(), strict=False)  # the shared LSTM weights
    x = torch.randn(B, T, D, dtype=torch.float64)
    state = tuple(torch.randn(2, B, H, dtype=torch.float64))
    logits, (h, c) = model(x, state, times=times)
    ref_logits, (ref_h, ref_c) = lstm(x, state)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(h, ref_h)
    torch.testing.assert_close(c, ref_c)


def test_times_per_example_and_default() -> None:
    torch.manual_seed(0)
    model = PhasedLSTM(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    default, _ = model(x)
    shared, _ = model(x, times=torch.arange(1, 6, dtype=torch.float64))
    per_example, _ = model(x, times=torch.arange(1, 6, dtype=torch.float64).expand(2, 5))
    torch.testing.assert_close(default, shared)
    torch.testing.assert_close(default, per_example)
    with pytest.raises(ValueError, match="times must have shape"):
        model(x, times=torch.arange(4.0))


def test_time_parameters_stay_positive_after_optimiser_steps() -> None:
    """Adam moves each raw parameter by ~lr per step: 5 steps of 0.5 would take r_on = 0.05, and every
    tau, s below 2.5, below zero if they were optimised directly."""
    torch.manual_seed(0)
    model = PhasedLSTM(10, 8, tau_range=(1.0, 2.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    x = F.one_hot(torch.randint(0, 10, (4, 6)), 10).float()
    for _ in range(5):
        logits, _ = model(x)
        # the task loss plus a push to shrink all three, as hard as it goes
        loss = logits.square().mean() + (model.tau + model.shift + model.r_on).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for value in (model.tau, model.shift, model.r_on):
        assert torch.all(value > 0) and torch.all(torch.isfinite(value))
    assert torch.all(model.r_on < 1)
    assert torch.all(model.tau < 1.0)  # the push did act on them


def test_initialisation_follows_the_documented_ranges() -> None:
    torch.manual_seed(0)
    model = PhasedLSTM(10, 256, tau_range=(1.0, 100.0), r_on=0.05)
    tau = model.tau.detach()
    assert torch.all((tau >= 1.0) & (tau <= 100.0))
    assert (tau < 10).float().mean().item() == pytest.approx(0.5, abs=0.1)  # log-uniform: median 10
    shift = model.shift.detach()
    assert torch.all((shift > 0) & (shift <= tau + 1e-4))
    torch.testing.assert_close(model.r_on.detach(), torch.full((256,), 0.05))
