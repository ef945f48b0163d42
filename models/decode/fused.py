"""A CharLSTM's weights rearranged for one-step decoding: priming a seed text, and the LSTM step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from models.char_lstm import CharLSTM
from models.decode.state import Clamp, StartState, after

if TYPE_CHECKING:
    from models.decode.buffers import StepBuffers


class FusedCharLSTM:
    """A CharLSTM's weights, rearranged once for one-step decoding (see models/decode/__init__.py).

    Matrices are stored transposed and contiguous, (in, out), because a one-row product against that
    layout is the fast case of the BLAS (the (out, in) layout used transposed is about 2x slower).
    The native step reads these attributes by name (decode_step.cpp checks them when it starts).
    """

    def __init__(self, model: CharLSTM) -> None:
        if not isinstance(model, CharLSTM):
            raise TypeError(f"FusedCharLSTM needs a CharLSTM, got {type(model).__name__}")
        lstm = model.lstm
        H = model.hidden_size
        self.vocab_size = model.vocab_size
        self.hidden_size = H
        self.num_layers = model.num_layers
        with torch.no_grad():
            # Per layer: w_ih, w_hh, b_ih, b_hh.
            weights = [p.detach().float() for layer in lstm.all_weights for p in layer]
            self.device = weights[0].device
            # nn.LSTM's gate order is (i, f, g, o); (i, f, o, g) puts the three sigmoid gates together.
            order = torch.cat(
                [torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]
            )
            order = order.to(self.device)
            w_ih, w_hh, b_ih, b_hh = weights[0:4]
            # Layer 0's input is an embedding row: fold the input product into a table, in float64
            # so that the folded sum rounds once.
            embedding = model.embedding.weight.detach().double()
            table = embedding @ w_ih[order].double().T + (b_ih + b_hh)[order].double()
            self.input_table = table.float().contiguous()  # (V, 4H)
            self.recurrent_0 = w_hh[order].T.contiguous()  # (H, 4H)
            self.stacked: list[tuple[torch.Tensor, torch.Tensor]] = []  # layers 1.., (2H, 4H) and (4H,)
            for layer in range(1, self.num_layers):
                w_ih, w_hh, b_ih, b_hh = weights[4 * layer : 4 * layer + 4]
                w_cat = torch.cat([w_ih, w_hh], dim=1)[order].T.contiguous()
                self.stacked.append((w_cat, (b_ih + b_hh)[order].contiguous()))
            self.head_weight = model.head.weight.detach().float().T.contiguous()  # (H, V)
            self.head_bias = model.head.bias.detach().float().contiguous()  # (V,)

    def prime(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run a prefix (T,) of ids from zero state: the next logits (V,) and state h, c each (L, H).

        Layer by layer, so that a layer's input product is one matmul over the whole prefix and only
        the recurrent product and the cell run per character. (torch.lstm, nn.LSTM's kernel, measured
        0.5-2 ms per call on one CPU thread even for a 1-character prefix: more than this loop costs
        for any usual prompt, and each join stalls every stream of the batch.)
        """
        H = self.hidden_size
        with torch.inference_mode():
            inputs = self.input_table.index_select(0, ids.to(self.device))  # (T, 4H): x @ W_ih^T + b
            outputs, c = _run_layer(inputs, self.recurrent_0)  # (T, H), (H,)
            hs, cs = [outputs[-1]], [c]
            for w_cat, bias in self.stacked:
                inputs = _input_product(bias, outputs, w_cat[:H])  # (T, 4H): the W_ih part of W_cat
                outputs, c = _run_layer(inputs, w_cat[H:])
                hs.append(outputs[-1])
                cs.append(c)
            logits = torch.addmm(self.head_bias, outputs[-1:], self.head_weight)[0]  # (V,)
            return logits, torch.stack(hs), torch.stack(cs)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The next logits (V,) from a state's h (L, H): the same product `prime` ends with."""
        with torch.inference_mode():
            return torch.addmm(self.head_bias, h[-1:].to(self.device), self.head_weight)[0]

    def start_row(self, start: StartState) -> torch.Tensor:
        """h | c | next logits: the first part of the batch row of a stream that continues `start`.
        The logits come from h as priming computes them, so the same state gives the same text."""
        return torch.cat([start.flat.to(self.device), self.readout(start.h)])

    def feed(self, ids: torch.Tensor, start: StartState) -> tuple[torch.Tensor, StartState]:
        """Run ids (T,) on from `start`, applying its clamps: the logits (T, V) that predicted each of
        them, and the state after them (its clamps what is left of them).

        `prime` is this from the zero state (the same layer-by-layer arithmetic), which is why a
        session's state after a prompt and an append is the state `/generate` primes for their
        concatenation.
        """
        H = self.hidden_size
        T = ids.shape[0]
        with torch.inference_mode():
            h0, c0 = start.h.to(self.device), start.c.to(self.device)
            inputs = self.input_table.index_select(0, ids.to(self.device))
            outputs, c = _run_layer(inputs, self.recurrent_0, h0[0], c0[0], _of_layer(start.clamps, 0))
            hs, cs = [outputs[-1]], [c]
            for layer, (w_cat, bias) in enumerate(self.stacked, start=1):
                inputs = _input_product(bias, outputs, w_cat[:H])
                clamps = _of_layer(start.clamps, layer)
                outputs, c = _run_layer(inputs, w_cat[H:], h0[layer], c0[layer], clamps)
                hs.append(outputs[-1])
                cs.append(c)
            before = torch.cat([h0[-1:], outputs[: T - 1]])  # the top h that predicted each id
            logits = torch.addmm(self.head_bias, before, self.head_weight)
            state = StartState(torch.stack(hs).cpu(), torch.stack(cs).cpu(), after(start.clamps, T))
            return logits, state

    def advance(self, b: StepBuffers) -> None:
        """Feed the chosen ids b.sampling.ids: new state and next logits for every row, in place.

        decode_step.cpp's `advance` is this, op for op: change them together.
        """
        ids = b.sampling.ids_flat
        for layer in range(self.num_layers):
            gates = b.gates[layer]
            if layer == 0:
                torch.index_select(self.input_table, 0, ids, out=gates)
                gates.addmm_(b.h[0], self.recurrent_0)
            else:
                weight, bias = self.stacked[layer - 1]
                torch.addmm(bias, b.layer_inputs[layer - 1], weight, out=gates)
            cell(b.gate_views[layer], b.c[layer], b.tanh_c, b.h[layer])
        torch.addmm(self.head_bias, b.h[-1], self.head_weight, out=b.sampling.logits)


class Gates(NamedTuple):
    """Views into one layer's gate pre-activations (rows, 4H), in the (i, f, o, g) order."""

    sigmoid: torch.Tensor  # i, f and o side by side
    i: torch.Tensor
    f: torch.Tensor
    o: torch.Tensor
    g: torch.Tensor

    @classmethod
    def of(cls, gates: torch.Tensor) -> Gates:
        H = gates.shape[1] // 4
        return cls(
            gates[:, : 3 * H], gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        )


def cell(gates: Gates, c: torch.Tensor, tanh_c: torch.Tensor, h: torch.Tensor) -> None:
    """The LSTM cell in place: c = f * c + i * g, h = o * tanh(c), from pre-activations."""
    gates.sigmoid.sigmoid_()
    gates.g.tanh_()
    c.mul_(gates.f).addcmul_(gates.i, gates.g)
    torch.tanh(c, out=tanh_c)
    torch.mul(gates.o, tanh_c, out=h)


def _run_layer(
    inputs: torch.Tensor,
    recurrent: torch.Tensor,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
    clamps: Sequence[Clamp] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer over a sequence from h0, c0 (H,) (None: zero): inputs (T, 4H) -> outputs h (T, H) and
    the last c (H,). `clamps` (this layer's) set c after each of their first `steps` characters."""
    T, H = inputs.shape[0], recurrent.shape[0]
    h = torch.zeros(T + 1, H, device=inputs.device)  # h[t + 1] is the output at t; h[0] the start state
    c = torch.zeros(1, H, device=inputs.device)
    if h0 is not None and c0 is not None:
        h[0] = h0
        c[0] = c0
    gates_buffer = torch.empty(1, 4 * H, device=inputs.device)
    gates, tanh_c = Gates.of(gates_buffer), torch.empty(1, H, device=inputs.device)
    for t in range(T):
        torch.addmm(inputs[t : t + 1], h[t : t + 1], recurrent, out=gates_buffer)
        cell(gates, c, tanh_c, h[t + 1 : t + 2])
        for clamp in clamps:
            if t < clamp.steps:
                c[0, clamp.unit] = clamp.value
    return h[1:], c[0]


def _input_product(bias: torch.Tensor, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """bias + inputs (T, H) @ weight for a whole layer's sequence, one row at a time.

    Not one (T, H) product: a BLAS's kernels for different row counts sum in different orders (a single
    row takes the matrix-vector path; on some CPUs the edge rows of a block do too), so a row's value
    would depend on how many rows came with it. One product per row has one shape, hence one order,
    whatever T is: feeding a text in pieces (a session's appends) gives bitwise the state priming it
    whole gives, on every CPU (tests/models/test_decode_state.py). The recurrence that follows costs a
    product per character already, so this at most doubles the small matmuls of priming."""
    out = torch.empty(inputs.shape[0], weight.shape[1], dtype=inputs.dtype, device=inputs.device)
    row_bias = bias.view(1, -1)
    for t in range(inputs.shape[0]):
        torch.addmm(row_bias, inputs[t : t + 1], weight, out=out[t : t + 1])
    return out


def _of_layer(clamps: Sequence[Clamp], layer: int) -> tuple[Clamp, ...]:
    return tuple(c for c in clamps if c.layer == layer)
