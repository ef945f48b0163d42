"""Initialisations of recurrent weights and gate biases by name: what the configs' `init` selects.

Every model builds its own `default` weights first (unchanged, so seeds and checkpoints from before
give bitwise the same weights); the functions here then overwrite the recurrent matrix and gate
biases in place, drawing from torch's global RNG (which the training loop seeds with config.seed):

- `chrono` (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?", ICLR):
  forget-gate bias b_f ~ log(U(1, T_max - 1)) and input-gate bias b_i = -b_f. A unit whose
  forget gate is sigmoid(b_f) forgets in about 1 / (1 - f) = 1 + exp(b_f) steps, so the units'
  memory spans start spread uniformly over 2..T_max, the range of dependencies the task has, where
  a constant bias gives every unit the same span. With T_max <= 2 there is no range to spread
  over and both biases are 0.
- `orthogonal` (Saxe, McClelland & Ganguli 2014): every gate's H x H block of the recurrent matrix
  a random orthogonal matrix (QR of a Gaussian), so at the start the recurrence neither grows nor
  shrinks a state's norm through its linear part.
- `chrono_orthogonal`: both, orthogonal blocks drawn first.
- `identity` (Le, Jaitly & Hinton 2015, "A simple way to initialize recurrent networks of
  rectified linear units", the IRNN; vanilla RNN only): recurrent matrix I and bias 0. The paper
  pairs it with ReLU; our RNN keeps tanh, where I still makes h(t) ~ h(t-1) for small states.

Gate layout: the hand-written LSTM (and the Phased LSTM) stacks its gates (i, f, g, o) in `W_h`
(4H, H) and `b` (4H,); nn.LSTM, in the char-LSTM, uses the same order in `weight_hh_l{k}` and
splits the bias into `bias_ih_l{k} + bias_hh_l{k}`.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import INITS


def check_init(model_type: str, init: str, chrono_t_max: int | None) -> None:
    """ValueError unless `init` applies to `model_type` (and chrono has its T_max)."""
    known = INITS[model_type]
    if init not in known:
        raise ValueError(
            f"init {init!r} does not apply to the {model_type} model; it accepts {', '.join(known)}"
        )
    if init.startswith("chrono") and chrono_t_max is None:
        raise ValueError(f"init {init!r} needs chrono_t_max")


def chrono_bias(hidden_size: int, t_max: int) -> torch.Tensor:
    """(H,) forget-gate biases log(U(1, T_max - 1)) (Tallec & Ollivier 2018); input-gate biases are -these."""
    high = max(t_max - 1, 1)
    return torch.empty(hidden_size).uniform_(1.0, float(high)).log_()


def orthogonal_blocks_(weight: torch.Tensor, hidden_size: int) -> None:
    """Make every (H, H) row block of `weight` (k*H, H) a random orthogonal matrix, in place."""
    with torch.no_grad():
        for block in torch.split(weight, hidden_size, dim=0):
            nn.init.orthogonal_(block)


def init_lstm_(
    init: str,
    W_h: torch.Tensor,
    bias: torch.Tensor,
    hidden_size: int,
    chrono_t_max: int | None,
    bias_hh: torch.Tensor | None = None,
) -> None:
    """Apply `init` to an LSTM layer: recurrent matrix W_h (4H, H), gate biases (4H,) in (i, f, g, o) order.

    `bias_hh` is nn.LSTM's second bias: chrono zeroes its i and f slices, so that the gates' total
    bias is exactly chrono's.
    """
    check_init("lstm", init, chrono_t_max)
    H = hidden_size
    with torch.no_grad():
        if init in ("orthogonal", "chrono_orthogonal"):
            orthogonal_blocks_(W_h, H)
        if init in ("chrono", "chrono_orthogonal"):
            assert chrono_t_max is not None  # check_init
            b_f = chrono_bias(H, chrono_t_max).to(bias)
            bias[0:H].copy_(-b_f)  # input gate
            bias[H : 2 * H].copy_(b_f)  # forget gate
            if bias_hh is not None:
                bias_hh[0 : 2 * H].zero_()


def init_rnn_(init: str, W_hh: torch.Tensor, b_h: torch.Tensor) -> None:
    """Apply `init` to a vanilla RNN's recurrent matrix W_hh (H, H) and bias b_h (H,)."""
    check_init("rnn", init, None)
    with torch.no_grad():
        if init == "identity":
            W_hh.copy_(torch.eye(W_hh.shape[0]))
            b_h.zero_()
        elif init == "orthogonal":
            nn.init.orthogonal_(W_hh)
