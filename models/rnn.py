"""Vanilla (Elman) RNN written from the course equations, with an explicit loop over time.

    h(t) = tanh(W_hx x(t) + W_hh h(t-1) + b_h),   h(0) = 0
    p(t) = W_ph h(t) + b_p

No nn.RNN / nn.Linear: the parameters are the matrices of the equations. The loop is written for
speed without changing the maths: the input projection W_hx x(t) + b_h is one matmul over all time
steps before the loop, each step is a single addmm + tanh, and the output head runs once over the
stacked hidden states after the loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.init import check_init, init_rnn_


class RNN(nn.Module):
    """Elman RNN: h(t) = tanh(W_hx x(t) + W_hh h(t-1) + b_h); logits p(t) = W_ph h(t) + b_p."""

    def __init__(
        self, input_size: int, hidden_size: int, num_classes: int = 10, init: str = "default"
    ) -> None:
        """`init`: default, identity or orthogonal recurrent weights (models/init.py)."""
        check_init("rnn", init, None)
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.init = init
        self.W_hx = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b_h = nn.Parameter(torch.empty(hidden_size))
        self.W_ph = nn.Parameter(torch.empty(num_classes, hidden_size))
        self.b_p = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # U(-1/sqrt(H), 1/sqrt(H)) for everything, as nn.RNN does: keeps tanh out of saturation at the
        # start and makes comparisons with nn.RNN like for like.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        init_rnn_(self.init, self.W_hh, self.b_h)  # after the default draws, which stay as they were

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (B, T, D), state h (B, H) or None for h(0) = 0 -> logits (B, T, C), h(T) (B, H)."""
        logits, h, _ = self.forward_with_hidden(inputs, state)
        return logits, h

    def forward_with_hidden(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Like forward, plus the hidden states [h(1), ..., h(T)], each (B, H), as autograd-graph nodes.

        The list is what the loop builds anyway, so this costs nothing; call `retain_grad()` on its
        items (or `torch.autograd.grad` against them) to get dL/dh(t), see gradient_flow.py.
        """
        B, T, D = inputs.shape
        h = inputs.new_zeros(B, self.hidden_size) if state is None else state  # (B, H)
        # W_hx x(t) + b_h for every t in one matmul, time-major so each step's slice is contiguous.
        x = inputs.transpose(0, 1).reshape(T * B, D)  # (T*B, D)
        xw = torch.addmm(self.b_h, x, self.W_hx.t()).view(T, B, self.hidden_size)  # (T, B, H)
        W_hh_t = self.W_hh.t()  # (H, H)
        hidden = []
        # unbind, not xw[t]: each index op adds a backward node that scatters into a full-size zero
        # tensor, which makes the backward pass quadratic in T.
        for xw_t in xw.unbind(0):
            h = torch.tanh(torch.addmm(xw_t, h, W_hh_t))  # (B, H)
            hidden.append(h)
        hs = torch.stack(hidden, dim=1)  # (B, T, H)
        logits = torch.addmm(self.b_p, hs.view(B * T, -1), self.W_ph.t()).view(B, T, -1)  # (B, T, C)
        return logits, h, hidden
