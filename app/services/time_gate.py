"""The Phased LSTM time gate of one unit over a range of t, from the model's own functions."""

from __future__ import annotations

from app.schemas.analysis import TimeGateOut, TimeGateParams


def time_gate_curve(params: TimeGateParams) -> TimeGateOut:
    import torch

    from models.phased_lstm import phase, time_gate

    # float64: t up to 1e6 with a period near 1 needs more than float32's 7 digits for phi.
    t = torch.linspace(params.t_start, params.t_end, params.points, dtype=torch.float64)
    phi = phase(t, params.tau, params.shift)
    k = time_gate(t, params.tau, params.shift, params.r_on, params.alpha)
    return TimeGateOut(t=t.tolist(), phi=phi.tolist(), k=k.tolist())
