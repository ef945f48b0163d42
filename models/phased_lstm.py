"""Phased LSTM (Neil, Pfeiffer & Liu, NeurIPS 2016): the LSTM of lstm.py plus a per-unit time gate.

Each hidden unit j has a period tau_j, a phase shift s_j and an open ratio r_on_j. At time stamp t:

    phi(t) = ((t - s) mod tau) / tau                         phase in the cycle, in [0, 1)
    k(t)   = 2 phi / r_on          if phi < r_on / 2          opening
             2 - 2 phi / r_on      if r_on / 2 <= phi < r_on  closing
             alpha phi             otherwise                  closed (leak alpha in training only)
    c(t)   = k * c~(t) + (1 - k) * c(t-1)
    h(t)   = k * h~(t) + (1 - k) * h(t-1)

where c~(t), h~(t) are the plain LSTM update (lstm.py) from c(t-1), h(t-1). A closed unit keeps its
state (up to the small training leak), so memory and gradients pass through closed phases without
decay. Time stamps default to t = 1..T; pass `times` to continue a sequence across windows or to
feed irregularly sampled data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.init import check_init, init_lstm_
from models.lstm import LSTM, LSTMState, lstm_cell


def phase(t: torch.Tensor, tau: torch.Tensor | float, shift: torch.Tensor | float) -> torch.Tensor:
    """phi(t) = ((t - s) mod tau) / tau, the position in the cycle, in [0, 1) (Neil et al. 2016)."""
    return torch.remainder(t - shift, tau) / tau  # remainder takes the divisor's sign


def time_gate(
    t: torch.Tensor,
    tau: torch.Tensor | float,
    shift: torch.Tensor | float,
    r_on: torch.Tensor | float,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Phased LSTM time gate k(t) (Neil et al. 2016, eq. 3); all arguments broadcast together.

    For a layer: t (..., 1) against tau, shift, r_on (H,) gives k (..., H). alpha is the leak in the
    closed phase: the paper's 1e-3 in training, 0 in evaluation.
    """
    phi = phase(t, tau, shift)
    rising = 2 * phi / r_on
    return torch.where(phi < 0.5 * r_on, rising, torch.where(phi < r_on, 2 - rising, alpha * phi))


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class PhasedLSTM(LSTM):
    """Phased LSTM: LSTM update gated per unit by the periodic time gate k(t); p = W_ph h + b_p.

    Learnable time parameters, kept positive by their parametrisation:
    - tau = exp(log_tau): a time scale, so optimiser steps in log space are relative changes.
      Initialised log-uniform in `tau_range` (the paper draws log tau uniformly, e.g. exp(U(0, 3))
      or exp(U(2, 6)) depending on the task's time scale); (1, 100) suits sequences of length 1..100.
    - shift = softplus(raw_shift): U(0, tau) at initialisation as in the paper; softplus keeps the
      gradient from vanishing as s grows, unlike exp.
    - r_on = sigmoid(logit_r_on): in (0, 1), since an open ratio >= 1 would leave no closed phase.
      Initialised to `r_on` (paper: 0.05).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int = 10,
        forget_bias: float = 1.0,
        tau_range: tuple[float, float] = (1.0, 100.0),
        r_on: float = 0.05,
        alpha: float = 1e-3,
        init: str = "default",
        chrono_t_max: int | None = None,
    ) -> None:
        if not (0 < tau_range[0] <= tau_range[1]):
            raise ValueError(f"tau_range must satisfy 0 < low <= high, got {tau_range}")
        if not 0 < r_on < 1:
            raise ValueError(f"r_on must be in (0, 1), got {r_on}")
        check_init("phased_lstm", init, chrono_t_max)
        super().__init__(input_size, hidden_size, num_classes, forget_bias)  # LSTM weights, default init
        self.tau_range = tau_range
        self.r_on_init = r_on
        self.alpha = alpha
        self.log_tau = nn.Parameter(torch.empty(hidden_size))
        self.raw_shift = nn.Parameter(torch.empty(hidden_size))
        self.logit_r_on = nn.Parameter(torch.empty(hidden_size))
        self.reset_time_parameters()
        # `init` (models/init.py) last, so the time parameters are those of the default init for the
        # same seed: runs that differ in init differ only in the LSTM weights init changes.
        self.init = init
        self.chrono_t_max = chrono_t_max
        init_lstm_(init, self.W_h, self.b, hidden_size, chrono_t_max)

    def reset_time_parameters(self) -> None:
        low, high = (math.log(v) for v in self.tau_range)
        with torch.no_grad():
            self.log_tau.uniform_(low, high)
            # clamp: softplus^-1(0) is -inf; a shift of 1e-4 is indistinguishable from 0.
            shift = (torch.rand_like(self.raw_shift) * self.log_tau.exp()).clamp_min(1e-4)
            self.raw_shift.copy_(_inverse_softplus(shift))
            self.logit_r_on.fill_(math.log(self.r_on_init / (1 - self.r_on_init)))

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()  # (H,)

    @property
    def shift(self) -> torch.Tensor:
        return F.softplus(self.raw_shift)  # (H,)

    @property
    def r_on(self) -> torch.Tensor:
        return torch.sigmoid(self.logit_r_on)  # (H,)

    def time_gates(self, times: torch.Tensor) -> torch.Tensor:
        """k for every unit at the given time stamps: times (T,) or (B, T) -> (T, H) or (B, T, H)."""
        alpha = self.alpha if self.training else 0.0  # the leak is a training aid only
        return time_gate(times.unsqueeze(-1), self.tau, self.shift, self.r_on, alpha)

    def forward(
        self, inputs: torch.Tensor, state: LSTMState | None = None, times: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        """inputs (B, T, D), state (h, c) each (B, H), times (B, T) or (T,) (default 1..T)
        -> logits (B, T, C), (h(T), c(T))."""
        logits, state, _ = self.forward_with_hidden(inputs, state, times)
        return logits, state

    def forward_with_hidden(
        self, inputs: torch.Tensor, state: LSTMState | None = None, times: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LSTMState, list[torch.Tensor]]:
        """Like forward, plus the hidden states [h(1), ..., h(T)], each (B, H), as autograd-graph nodes."""
        B, T, D = inputs.shape
        H = self.hidden_size
        if times is None:
            times = torch.arange(1, T + 1, device=inputs.device, dtype=inputs.dtype)  # (T,)
        elif times.shape not in ((T,), (B, T)):
            raise ValueError(f"times must have shape ({T},) or ({B}, {T}), got {tuple(times.shape)}")
        k = self.time_gates(times.to(inputs.dtype))  # (T, H) or (B, T, H)
        k_steps = k.unbind(0) if k.dim() == 2 else k.transpose(0, 1).unbind(0)  # T x (H,) or (B, H)
        if state is None:
            h = c = inputs.new_zeros(B, H)  # (B, H)
        else:
            h, c = state
        x = inputs.transpose(0, 1).reshape(T * B, D)  # (T*B, D)
        xw = torch.addmm(self.b, x, self.W_x.t()).view(T, B, 4 * H)  # (T, B, 4H)
        # The phased loop stays autograd-traced (lstm_cell): no hand-derived backward for it.
        W_h_t = self.W_h.t()  # (H, 4H)
        hidden = []
        for xw_t, k_t in zip(xw.unbind(0), k_steps, strict=True):
            h_tilde, c_tilde = lstm_cell(xw_t, h, c, W_h_t)  # the plain LSTM update
            c = torch.lerp(c, c_tilde, k_t)  # k * c~ + (1 - k) * c(t-1)
            h = torch.lerp(h, h_tilde, k_t)  # k * h~ + (1 - k) * h(t-1)
            hidden.append(h)
        hs = torch.stack(hidden, dim=1)  # (B, T, H)
        logits = torch.addmm(self.b_p, hs.view(B * T, H), self.W_ph.t()).view(B, T, -1)  # (B, T, C)
        return logits, (h, c), hidden
