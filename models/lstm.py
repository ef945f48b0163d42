"""LSTM written from the course equations, with an explicit loop over time.

    g(t) = tanh(W_gx x(t) + W_gh h(t-1) + b_g)
    i(t) = sigmoid(W_ix x(t) + W_ih h(t-1) + b_i)
    f(t) = sigmoid(W_fx x(t) + W_fh h(t-1) + b_f)
    o(t) = sigmoid(W_ox x(t) + W_oh h(t-1) + b_o)
    c(t) = g(t) * i(t) + c(t-1) * f(t)
    h(t) = tanh(c(t)) * o(t)
    p(t) = W_ph h(t) + b_p,          h(0) = c(0) = 0

The four gates' matrices are stacked so that one step is a single matmul, in PyTorch's gate order
(i, f, g, o): `W_x` (4H, D) is [W_ix; W_fx; W_gx; W_ox], `W_h` (4H, H) is [W_ih; W_fh; W_gh; W_oh]
and `b` (4H,) is [b_i; b_f; b_g; b_o]. (nn.LSTM splits b into bias_ih + bias_hh.)

Two implementations of the same equations:
- `lstm_cell`, one step traced by autograd, used by `LSTM.forward_with_hidden` (which hands out every
  h(t) as a graph node, for gradient-flow plots) and by the Phased LSTM;
- `LSTMSequence`, the whole loop as one autograd.Function with backpropagation through time derived
  by hand, used by `LSTM.forward`. This is what lets the hand-written LSTM train about as fast as
  nn.LSTM's fused oneDNN/cuDNN kernel (bench/bench_cells.py): no autograd graph of ~10 nodes per
  step, every step writes into preallocated buffers, and the weight gradients are summed over time
  by one large matmul instead of one small one per step.
Tests check the two against each other, against a NumPy evaluation of the equations, against
nn.LSTM, and the hand-derived backward against finite differences (gradcheck).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from models.init import check_init, init_lstm_

LSTMState = tuple[torch.Tensor, torch.Tensor]


def lstm_cell(
    xw_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_h_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from the precomputed input part xw_t = W_x x(t) + b (B, 4H): h(t), c(t) each (B, H)."""
    gates = torch.addmm(xw_t, h, W_h_t)  # (B, 4H): W_·x x(t) + W_·h h(t-1) + b_·
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = g * i + c * f
    h = torch.tanh(c) * o
    return h, c


class LSTMSequence(torch.autograd.Function):
    """The LSTM equations over a whole sequence, with backpropagation through time derived by hand.

    forward(inputs (B, T, D), W_x (4H, D), b (4H,), W_h (4H, H), h0, c0 (B, H) or None for zeros)
    -> (h(1..T) (T, B, H) time-major, c(T) (B, H)).

    Each step is ONE matmul, [x(t), 1, h(t-1)] @ [W_x, b, W_h]^T: the input, bias and recurrent terms
    of all four gates at once. h(t) is written straight into the next step's row of that augmented
    input `xh`, so nothing is copied between steps, no bias is added separately, and the backward
    pass gets dW_x, db and dW_h from one matmul over all steps. (Measured against precomputing
    W_x x(t) + b for all t before the loop and adding W_h h(t-1) per step: that reads and writes a
    (T, B, 4H) buffer once more and came out 5-8% slower on CPU.)

    Backward, with a = (i, f, g, o) after their nonlinearities and dh, dc the gradients reaching
    h(t), c(t):
        do = dh tanh(c)            dc += dh o (1 - tanh(c)^2)
        di = dc g    df = dc c(t-1)    dg = dc i,   each times its nonlinearity's derivative:
        sigmoid' = a (1 - a), tanh' = 1 - g^2, giving dgates(t) (B, 4H)
        dh(t-1) = dgates(t) W_h + (the head's gradient at t-1)          dc(t-1) = dc f
        [dW_x, db, dW_h] = sum_t dgates(t)^T [x(t), 1, h(t-1)]
    """

    # ctx is Any: torch types it as FunctionCtx, which does not declare what backward reads from it
    # (saved_tensors, needs_input_grad).
    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        W_x: torch.Tensor,
        b: torch.Tensor,
        W_h: torch.Tensor,
        h0: torch.Tensor | None,
        c0: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = inputs.shape
        H = W_h.shape[1]
        W_t = torch.cat([W_x, b.unsqueeze(1), W_h], dim=1).t()  # (D+1+H, 4H)
        xh = inputs.new_empty(T + 1, B, D + 1 + H)  # xh[t] = [x(t+1), 1, h(t)]; row T holds h(T) only
        xh[:T, :, :D] = inputs.transpose(0, 1)
        xh[:T, :, D] = 1
        xh[0, :, D + 1 :] = 0 if h0 is None else h0
        hs = xh[1:, :, D + 1 :]  # (T, B, H) view: h(1..T)
        acts = inputs.new_empty(T, B, 4 * H)  # i, f, g, o after their nonlinearities
        cs = inputs.new_empty(T, B, H)  # c(t)
        tanh_cs = inputs.new_empty(T, B, H)  # tanh(c(t))
        # Every per-step view is made up front by unbind: indexing and slicing in Python per step
        # cost as much as the arithmetic at these sizes.
        gates = acts.view(T, B, 4, H)
        steps = zip(
            xh.unbind(0)[:T],  # (B, D+1+H)
            acts.unbind(0),  # (B, 4H)
            gates[:, :, :2].unbind(0),  # (B, 2, H): i and f, for one sigmoid call
            *(gates[:, :, k].unbind(0) for k in range(4)),  # i, f, g, o, each (B, H)
            cs.unbind(0),
            tanh_cs.unbind(0),
            hs.unbind(0),
            strict=True,
        )
        c = c0
        for xh_t, a, i_f, i, f, g, o, c_t, tanh_c_t, h_t in steps:
            torch.mm(xh_t, W_t, out=a)  # W_.x x(t) + W_.h h(t-1) + b_. for all four gates
            i_f.sigmoid_()
            g.tanh_()
            o.sigmoid_()
            c = torch.mul(g, i, out=c_t) if c is None else torch.mul(c, f, out=c_t).addcmul_(g, i)
            torch.mul(torch.tanh(c, out=tanh_c_t), o, out=h_t)  # also next step's input
        assert c is not None, "an LSTM sequence has at least one step"
        ctx.save_for_backward(W_x, W_h, c0, xh, acts, cs, tanh_cs)
        return hs, c.clone()  # clone: c is a view into a saved buffer

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_hs: torch.Tensor, d_c: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        W_x, W_h, c0, xh, acts, cs, tanh_cs = ctx.saved_tensors
        T, B, H4 = acts.shape
        H, D = H4 // 4, W_x.shape[1]
        one = acts.new_ones(())
        gates = acts.view(T, B, 4, H)
        # The nonlinearities' derivatives for all steps at once (one pass each, not 3T small ops):
        # sigmoid' = a (1 - a) for i, f, o; tanh' = 1 - g^2 for g; dh(t)/dc(t) = o (1 - tanh(c)^2).
        deriv = torch.addcmul(acts, acts, acts, value=-1)  # (T, B, 4H)
        torch.addcmul(one, gates[:, :, 2], gates[:, :, 2], value=-1, out=deriv.view(T, B, 4, H)[:, :, 2])
        dh_dc = torch.addcmul(one, tanh_cs, tanh_cs, value=-1).mul_(gates[:, :, 3])  # (T, B, H)
        d_gates = torch.empty_like(acts)  # (T, B, 4H): gradient w.r.t. the gates' pre-activations
        d_gates_4 = d_gates.view(T, B, 4, H)
        steps = zip(
            deriv.unbind(0),
            *(gates[:, :, k].unbind(0) for k in range(3)),  # i, f, g
            tanh_cs.unbind(0),
            dh_dc.unbind(0),
            [c0, *cs.unbind(0)[:-1]],  # c(t-1)
            d_gates.unbind(0),
            *(d_gates_4[:, :, k].unbind(0) for k in range(4)),  # di, df, dg, do
            [None, *d_hs.unbind(0)[:-1]],  # the head's gradient at h(t-1)
            strict=True,
        )
        dc = d_c.clone()  # (B, H)
        dh = d_hs[T - 1]  # (B, H)
        dh0 = None
        for deriv_t, i, f, g, tanh_c, dh_dc_t, c_prev, dgates, di, df, dg, do, dh_head in reversed(
            list(steps)
        ):
            torch.mul(dh, tanh_c, out=do)
            dc.addcmul_(dh, dh_dc_t)
            torch.mul(dc, g, out=di)
            if c_prev is None:
                df.zero_()
            else:
                torch.mul(dc, c_prev, out=df)
            torch.mul(dc, i, out=dg)
            dgates.mul_(deriv_t)  # through the nonlinearities
            dc.mul_(f)  # now dL/dc(t-1)
            if dh_head is not None:
                dh = torch.addmm(dh_head, dgates, W_h)  # dL/dh(t-1): head + recurrence
            elif ctx.needs_input_grad[4]:
                dh0 = torch.mm(dgates, W_h)
        d_gates_2d = d_gates.view(T * B, 4 * H)
        d_inputs = dW_x = db = dW_h = None
        if ctx.needs_input_grad[0]:
            d_inputs = torch.mm(d_gates_2d, W_x).view(T, B, D).transpose(0, 1)
        if any(ctx.needs_input_grad[1:4]):
            # (xh^T dgates)^T rather than dgates^T xh: MKL is faster that way round.
            dW = torch.mm(xh[:T].view(T * B, -1).t(), d_gates_2d).t()  # (4H, D+1+H)
            dW_x, db, dW_h = dW[:, :D], dW[:, D], dW[:, D + 1 :]
        dc0 = dc if ctx.needs_input_grad[5] else None
        return d_inputs, dW_x, db, dW_h, dh0, dc0


class LSTM(nn.Module):
    """LSTM (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000): c = g*i + c*f, h = tanh(c)*o."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int = 10,
        forget_bias: float = 1.0,
        init: str = "default",
        chrono_t_max: int | None = None,
    ) -> None:
        """`init` and `chrono_t_max`: see models/init.py (default: the initialisation below)."""
        check_init("lstm", init, chrono_t_max)
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.forget_bias = forget_bias
        self.init = init
        self.chrono_t_max = chrono_t_max
        self.W_x = nn.Parameter(torch.empty(4 * hidden_size, input_size))  # [W_ix; W_fx; W_gx; W_ox]
        self.W_h = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))  # [W_ih; W_fh; W_gh; W_oh]
        self.b = nn.Parameter(torch.empty(4 * hidden_size))  # [b_i; b_f; b_g; b_o]
        self.W_ph = nn.Parameter(torch.empty(num_classes, hidden_size))
        self.b_p = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Weights U(-1/sqrt(H), 1/sqrt(H)) as nn.LSTM does; gate biases 0 except the forget gate.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.W_x, self.W_h, self.W_ph, self.b_p):
            nn.init.uniform_(p, -bound, bound)
        H = self.hidden_size
        with torch.no_grad():
            self.b.zero_()
            # A positive forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015) starts every cell
            # remembering: with b_f ~ 0, f ~ 0.5 and the memory of a palindrome's first digit shrinks
            # like 0.5^T, so the gradient that would teach the net to keep it vanishes and training
            # sits at chance for T ~ 20 (as nn.LSTM with its default init does). b_f = 1 gives
            # f ~ 0.73 at the start, and a signal that survives long enough to be learned.
            self.b[H : 2 * H].fill_(self.forget_bias)
        # After the default draws, so that "default" draws exactly what it always did.
        init_lstm_(self.init, self.W_h, self.b, H, self.chrono_t_max)

    def forward(self, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """inputs (B, T, D), state (h, c) each (B, H) or None for zeros -> logits (B, T, C), (h(T), c(T))."""
        B, T, D = inputs.shape
        h0, c0 = (None, None) if state is None else state
        # Function.apply has no annotations in torch; it returns what forward returns.
        hs, c = LSTMSequence.apply(  # type: ignore[no-untyped-call]
            inputs, self.W_x, self.b, self.W_h, h0, c0
        )  # (T, B, H), (B, H)
        logits = torch.addmm(self.b_p, hs.reshape(T * B, -1), self.W_ph.t())  # (T*B, C)
        return logits.view(T, B, -1).transpose(0, 1).contiguous(), (hs[-1], c)  # (B, T, C)

    def forward_with_hidden(
        self, inputs: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState, list[torch.Tensor]]:
        """Like forward (same values), plus the hidden states [h(1), ..., h(T)], each (B, H), as graph nodes.

        Traced step by step by autograd, so slower than forward; call `retain_grad()` on the states
        (or `torch.autograd.grad` against them) to get dL/dh(t), see gradient_flow.py.
        """
        B, T, D = inputs.shape
        if state is None:
            h = c = inputs.new_zeros(B, self.hidden_size)  # (B, H)
        else:
            h, c = state
        x = inputs.transpose(0, 1).reshape(T * B, D)  # (T*B, D)
        xw = torch.addmm(self.b, x, self.W_x.t()).view(T, B, -1)  # (T, B, 4H)
        W_h_t = self.W_h.t()  # (H, 4H)
        hidden = []
        # unbind, not xw[t]: each index op adds a backward node that scatters into a full-size zero
        # tensor, which makes the backward pass quadratic in T.
        for xw_t in xw.unbind(0):
            h, c = lstm_cell(xw_t, h, c, W_h_t)  # (B, H) each
            hidden.append(h)
        hs = torch.stack(hidden, dim=1)  # (B, T, H)
        logits = torch.addmm(self.b_p, hs.view(B * T, -1), self.W_ph.t()).view(B, T, -1)  # (B, T, C)
        return logits, (h, c), hidden
