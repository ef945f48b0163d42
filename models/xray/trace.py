"""One forward pass that keeps what the cells compute: the gates, the cell and the output of every unit.

The same weights run through the same equations as the models' own forward (models/rnn.py, lstm.py,
phased_lstm.py, char_lstm.py), so the traced h, c and logits equal theirs (tests/models/test_xray.py):

- rnn: h(t) from `RNN.forward_with_hidden`;
- lstm: i, f, g, o, c, h, step by step as `lstm_cell` computes them (gate order i, f, g, o);
- phased_lstm: the same, plus the time gate k(t); i, f, g, o are the plain LSTM update's, c and h
  are after the time gate's interpolation (what the next step reads);
- char_lstm: nn.LSTM has no hook for its gates, so they are recomputed from its weights layer by
  layer. The fused kernel gives one layer's h(1..T) in C++ speed; then the gates of all steps are
  one matmul on [x(t), h(t-1)] (gate order i, f, g, o, biases bias_ih + bias_hh), c(t) =
  f c(t-1) + i g is the only loop (two element-wise ops a step) and h = o tanh(c) is recomputed from
  it: a wrong gate or order would not give back the kernel's h. The next layer reads the traced h.
  A Python loop of the whole cell would cost ~5x the model's forward over 2,000 characters.
"""

from __future__ import annotations

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
def trace(model: nn.Module, inputs: torch.Tensor) -> Trace:
    """inputs: (B, T, D) floats for rnn / lstm / phased_lstm (times 1..T), (B, T) ids for char_lstm.

    Evaluation semantics whatever the module's mode: no dropout, no time-gate leak."""
    was_training = model.training
    model.eval()
    try:
        kind = model_type(model)
        if kind == "rnn":
            assert isinstance(model, RNN)
            logits, _, hidden = model.forward_with_hidden(inputs)
            return Trace(logits, [{"h": torch.stack(hidden, dim=1)}])
        if kind == "char_lstm":
            assert isinstance(model, CharLSTM)
            return _trace_char_lstm(model, inputs)
        assert isinstance(model, LSTM)
        return _trace_lstm(model, inputs)
    finally:
        model.train(was_training)


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


def _trace_char_lstm(model: CharLSTM, ids: torch.Tensor) -> Trace:
    lstm = model.lstm
    x = model.embedding(ids)  # (B, T, E)
    B, T, _ = x.shape
    H = model.hidden_size
    layers = []
    for n in range(model.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{n}"), getattr(lstm, f"weight_hh_l{n}")
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{n}"), getattr(lstm, f"bias_hh_l{n}")
        zeros = x.new_zeros(1, B, H)
        # The fused kernel for this one layer (nn.LSTM's own call): h(1..T), the recurrence's input.
        out, _, _ = torch.lstm(x, (zeros, zeros), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, True)
        h_prev = torch.cat([x.new_zeros(B, 1, H), out[:, :-1]], dim=1)  # (B, T, H): h(t-1)
        gates = torch.addmm(b_ih + b_hh, x.reshape(B * T, -1), w_ih.t())  # (B*T, 4H)
        gates = gates.addmm_(h_prev.reshape(B * T, H), w_hh.t()).view(B, T, 4, H)
        i, f, o = (torch.sigmoid(gates[:, :, j]) for j in (0, 1, 3))
        g = torch.tanh(gates[:, :, 2])
        cs = x.new_empty(T, B, H)
        c = x.new_zeros(B, H)
        # Views made up front by unbind: an index op per step costs as much as the arithmetic.
        steps = zip((i * g).transpose(0, 1).unbind(0), f.transpose(0, 1).unbind(0), cs.unbind(0), strict=True)
        for ig_t, f_t, c_t in steps:
            c = torch.addcmul(ig_t, f_t, c, out=c_t)  # c(t) = i g + f c(t-1)
        c_seq = cs.transpose(0, 1)
        h = o * torch.tanh(c_seq)  # (B, T, H)
        layers.append({"i": i, "f": f, "g": g, "o": o, "c": c_seq.contiguous(), "h": h})
        x = h
    return Trace(model.head(x), layers)
