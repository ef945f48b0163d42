"""One forward pass that keeps what the cells compute: the gates, the cell and the output of every unit.

The same weights run through the same equations as the models' own forward (models/rnn.py, lstm.py,
phased_lstm.py, char_lstm.py), so the traced h, c and logits equal theirs (tests/models/test_xray.py):

- rnn: h(t) from `RNN.forward_with_hidden`;
- lstm: i, f, g, o, c, h, step by step as `lstm_cell` computes them (gate order i, f, g, o);
- phased_lstm: the same, plus the time gate k(t); i, f, g, o are the plain LSTM update's, c and h
  are after the time gate's interpolation (what the next step reads);
- char_lstm: nn.LSTM has no hook for its gates, so they are recomputed from its weights layer by
  layer (gate order i, f, g, o, biases bias_ih + bias_hh), in one of two ways:
  - native (models/native/xray_trace.cpp, where `python -m models.native` has built it and the model
    is on the CPU in float32): one pass per layer, the input product of all steps as one GEMM, then
    each step's h(t-1) W_hh^T and cell in C++ loops, writing i, f, g, o, c and h straight into the
    answer's tensors. About one forward pass. Its own arithmetic (its sigmoid and tanh are Cephes'
    polynomials), so its h and logits equal the model's to float32 rounding, not bitwise
    (tests/models/test_native_trace.py).
  - PyTorch (no build, another device or dtype, or `native=False`): the fused kernel gives one
    layer's h(1..T) in C++ speed (bitwise the model's h, and what the next layer reads, as in the
    model); then the gates of all steps are two matmuls on x(t) and h(t-1), and c(t) = f c(t-1) + i g
    is a linear recurrence, solved in blocks (`cell_states`) instead of a loop of T steps. About twice
    the forward. tests/models/test_xray.py checks h = o tanh(c) between the traced signals: a wrong
    gate or order would not give back the kernel's h. A Python loop of the whole cell would cost ~5x
    the model's forward over 2,000 characters; a loop of c alone ~1x.
  Either way i, f, g, o and c (natively h too) are stored transposed, (H, B, T), so that each unit's
  series lies contiguous (the answer's [units, positions]), and handed out as (B, T, H) views.

`units` and `layers` narrow a trace to what a request lists: the char-LSTM keeps no gates for a
layer not listed (its h is still computed, the same way: the layers above read it). Units are picked
from the whole layer's signals, never computed alone: element-wise kernels take other code paths at
other widths, and a unit's values must not depend on which others were asked for (bitwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.char_lstm import CharLSTM
from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM
from models.rnn import RNN

LSTM_SIGNALS = ("i", "f", "g", "o", "c", "h")
SIGNALS = {
    "rnn": ("h",),
    "lstm": LSTM_SIGNALS,
    "phased_lstm": (*LSTM_SIGNALS, "k"),
    "char_lstm": LSTM_SIGNALS,
}
SIGMOID_GATES = ("i", "f", "o")  # the gates in [0, 1] whose saturation Karpathy et al. count


@dataclass(frozen=True)
class Trace:
    """logits (B, T, C); per layer, each signal's values (B, T, H)."""

    logits: torch.Tensor
    layers: list[dict[str, torch.Tensor]]


def model_type(model: nn.Module) -> str:
    """The registry's name for a model (PhasedLSTM before LSTM: it is one)."""
    for cls, name in ((PhasedLSTM, "phased_lstm"), (LSTM, "lstm"), (RNN, "rnn"), (CharLSTM, "char_lstm")):
        if isinstance(model, cls):
            return name
    raise ValueError(
        f"model type {type(model).__name__} is not recognized; expected rnn, lstm, phased_lstm or char_lstm"
    )


def layer_sizes(model: nn.Module) -> list[int]:
    """Units per layer: one layer for the palindrome models, `num_layers` for the char-LSTM."""
    if isinstance(model, CharLSTM):
        return [model.hidden_size] * model.num_layers
    assert isinstance(model, RNN | LSTM)
    return [model.hidden_size]


@torch.inference_mode()
def trace(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    units: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    native: bool | None = None,
) -> Trace:
    """inputs: (B, T, D) floats for rnn / lstm / phased_lstm (times 1..T), (B, T) ids for char_lstm.

    `units` (default every one): the units kept in each layer, in that order, so each signal is
    (B, T, len(units)); `layers` (default every one): the layers traced, the others an empty dict.
    Evaluation semantics whatever the module's mode: no dropout, no time-gate leak. `native` (the
    char-LSTM only): None traces with the C++ layer where models.native is built and the model is on
    the CPU in float32, True insists on it (RuntimeError otherwise), False keeps the PyTorch trace."""
    was_training = model.training
    model.eval()
    try:
        kind = model_type(model)
        if kind == "char_lstm":
            assert isinstance(model, CharLSTM)
            traced = _trace_char_lstm(model, inputs, layers, native)
        elif kind == "rnn":
            assert isinstance(model, RNN)
            logits, _, hidden = model.forward_with_hidden(inputs)
            traced = Trace(logits, [{"h": torch.stack(hidden, dim=1)}])
        else:
            assert isinstance(model, LSTM)
            traced = _trace_lstm(model, inputs)
        return _narrowed(traced, units, layers)
    finally:
        model.train(was_training)


def _narrowed(traced: Trace, units: Sequence[int] | None, layers: Sequence[int] | None) -> Trace:
    """The listed units of the listed layers (a layer not listed: an empty dict)."""
    if units is None and layers is None:
        return traced
    index = None if units is None else torch.tensor(units, dtype=torch.long)
    kept = [
        (
            {}
            if layers is not None and n not in layers
            else {
                name: values if index is None else values.index_select(-1, index)
                for name, values in layer.items()
            }
        )
        for n, layer in enumerate(traced.layers)
    ]
    return Trace(traced.logits, kept)


def _trace_lstm(model: LSTM, inputs: torch.Tensor) -> Trace:
    """The hand-written LSTM (and the Phased LSTM's time gate on top), as lstm_cell steps it."""
    B, T, D = inputs.shape
    H = model.hidden_size
    k = None
    if isinstance(model, PhasedLSTM):
        times = torch.arange(1, T + 1, dtype=inputs.dtype)  # (T,), the default stamps of forward
        k = model.time_gates(times)  # (T, H)
    h = c = inputs.new_zeros(B, H)
    xw = torch.addmm(model.b, inputs.transpose(0, 1).reshape(T * B, D), model.W_x.t()).view(T, B, 4 * H)
    W_h_t = model.W_h.t()  # (H, 4H)
    acts = inputs.new_empty(T, B, 4, H)  # i, f, g, o after their nonlinearities
    cs, hs = inputs.new_empty(T, B, H), inputs.new_empty(T, B, H)
    for t, xw_t in enumerate(xw.unbind(0)):
        gates = torch.addmm(xw_t, h, W_h_t).view(B, 4, H)  # as lstm_cell: x, h(t-1) and bias at once
        a = acts[t]
        torch.sigmoid(gates[:, :2], out=a[:, :2])
        torch.tanh(gates[:, 2], out=a[:, 2])
        torch.sigmoid(gates[:, 3], out=a[:, 3])
        i, f, g, o = a.unbind(1)
        c_new = g * i + c * f
        h_new = torch.tanh(c_new) * o
        if k is not None:  # the Phased LSTM: k c~ + (1 - k) c(t-1), the same for h
            c_new, h_new = torch.lerp(c, c_new, k[t]), torch.lerp(h, h_new, k[t])
        c, h = cs[t].copy_(c_new), hs[t].copy_(h_new)
    logits = torch.addmm(model.b_p, hs.reshape(T * B, H), model.W_ph.t()).view(T, B, -1)
    layer = {name: acts[:, :, n].transpose(0, 1) for n, name in enumerate("ifgo")}  # each (B, T, H)
    layer |= {"c": cs.transpose(0, 1), "h": hs.transpose(0, 1)}
    if k is not None:
        layer["k"] = k.expand(B, T, H)
    return Trace(logits.transpose(0, 1), [{name: values.contiguous() for name, values in layer.items()}])


def _trace_char_lstm(
    model: CharLSTM, ids: torch.Tensor, layers: Sequence[int] | None, native: bool | None
) -> Trace:
    lstm = model.lstm
    x = model.embedding(ids)  # (B, T, E)
    layer_of = _native_layer(x, native)
    traced: list[dict[str, torch.Tensor]] = []
    for n in range(model.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{n}"), getattr(lstm, f"weight_hh_l{n}")
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{n}"), getattr(lstm, f"bias_hh_l{n}")
        listed = layers is None or n in layers
        x, signals = layer_of(x, w_ih, w_hh, b_ih, b_hh, listed)  # x: (B, T, H), what the next layer reads
        traced.append(signals if listed else {})
    return Trace(model.head(x), traced)


# One layer: (x, w_ih, w_hh, b_ih, b_hh, listed) -> (h (B, T, H), its signals, or {} when not listed).
LayerTrace = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool],
    tuple[torch.Tensor, dict[str, torch.Tensor]],
]


def _native_layer(x: torch.Tensor, native: bool | None) -> LayerTrace:
    """The C++ layer (models/native/xray_trace.cpp) where it is built and x is CPU float32 (or
    `native` is True: then it must be), else the PyTorch one (or `native` is False)."""
    if native is False:
        return _torch_layer
    from models.native import load

    module = load()
    usable = x.device.type == "cpu" and x.dtype == torch.float32
    if native and (module is None or not usable):
        why = "not built: run `python -m models.native`" if module is None else "CPU float32 only"
        raise RuntimeError(f"the native trace is unavailable: {why}")
    if module is None or not usable:
        return _torch_layer
    step = module.lstm_trace_layer

    def layer(
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        listed: bool,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden, signals = step(x.contiguous(), w_ih, w_hh, b_ih, b_hh, listed)
        if signals is None:
            return hidden, {}
        # (B, T, H) views of the (H, B, T) storage of each, as every char-LSTM trace answers.
        return hidden, {name: signals[j].permute(1, 2, 0) for j, name in enumerate(LSTM_SIGNALS)}

    return layer


def _torch_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    listed: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One layer in PyTorch: the fused kernel for h, then the gates recomputed (without `listed`, none)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    zeros = x.new_zeros(1, B, H)
    # The fused kernel for this one layer (nn.LSTM's own call): h(1..T), the recurrence's input.
    out, _, _ = torch.lstm(x, (zeros, zeros), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, True)
    if not listed:
        return out, {}
    h_prev = torch.cat([x.new_zeros(B, 1, H), out[:, :-1]], dim=1)  # (B, T, H): h(t-1)
    # Transposed, (4H, B*T): each gate's units come out as rows over positions, the answer's
    # [units, positions] layout, so the signals need no transposing copy on their way out.
    gates = torch.addmm((b_ih + b_hh)[:, None], w_ih, x.reshape(B * T, -1).t())
    gates = gates.addmm_(w_hh, h_prev.reshape(B * T, H).t()).view(4, H, B, T)
    i, f, o = (torch.sigmoid(gates[j]) for j in (0, 1, 3))  # each (H, B, T)
    g = torch.tanh(gates[2])
    c = cell_states(i * g, f)
    signals = {"i": i, "f": f, "g": g, "o": o, "c": c}
    # (B, T, H) views of the (H, B, T) storage, as every trace answers; h is the kernel's own.
    return out, {name: values.permute(1, 2, 0) for name, values in signals.items()} | {"h": out}


def cell_states(ig: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """c(t) = ig(t) + f(t) c(t-1) from c(0) = 0, for ig, f (..., T), time last: the cell's recurrence
    once the gates are known, a linear one. In blocks of K ~ sqrt(T) steps: within every block at
    once, c from a zero start and the product P of its f's (K steps); then each block's start c0
    (T / K steps); then c = c_block + P c0. ~2 sqrt(T) element-wise steps instead of T; no division,
    so a forget gate of 0 is exact. Equal to the step-by-step loop to float32 rounding."""
    *lead, T = ig.shape
    K = max(1, math.isqrt(T))
    blocks = -(-T // K)
    pad = blocks * K - T  # steps after T: f = 1, ig = 0, which change nothing before them
    ig = torch.nn.functional.pad(ig, (0, pad)).view(*lead, blocks, K)
    f = torch.nn.functional.pad(f, (0, pad), value=1.0).view(*lead, blocks, K)
    local = torch.empty_like(ig)  # c within each block from a zero start
    local[..., 0] = ig[..., 0]
    for k in range(1, K):
        torch.addcmul(ig[..., k], f[..., k], local[..., k - 1], out=local[..., k])
    carried = torch.cumprod(f, dim=-1)  # f's product since the block's start
    starts = ig.new_zeros(*lead, blocks)  # c(t) just before each block
    for j in range(1, blocks):
        torch.addcmul(local[..., j - 1, -1], carried[..., j - 1, -1], starts[..., j - 1], out=starts[..., j])
    # Into a contiguous (..., T): the whole blocks, then the last one's first T mod K steps.
    c = ig.new_empty(*lead, T)
    whole = T // K
    torch.addcmul(
        local[..., :whole, :],
        carried[..., :whole, :],
        starts[..., :whole, None],
        out=c[..., : whole * K].view(*lead, whole, K),
    )
    if whole < blocks:
        rest = T - whole * K
        torch.addcmul(
            local[..., whole, :rest],
            carried[..., whole, :rest],
            starts[..., whole, None],
            out=c[..., whole * K :],
        )
    return c
