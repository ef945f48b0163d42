"""A decode path for CharLSTM built for serving: many independent streams stepped as one batch.

`generate` runs the nn.Module one character at a time; at batch 1-32 on a CPU most of its time is
Python and dispatcher overhead, not arithmetic. Here the weights are rearranged once (`FusedCharLSTM`)
and a `DecodeBatch` steps every active stream with a fixed, short list of in-place torch ops into
buffers allocated once per batch capacity:

    layer 0   gates = T[id] + h_0 @ W_hh^T        T = embedding @ W_ih^T + b (precomputed, V x 4H)
    layer l   gates = [h_{l-1}, h_l] @ W_cat^T + b     W_cat = [W_ih | W_hh]: one matmul per layer
    cell      gate rows reordered to (i, f, o, g), so one sigmoid covers i, f and o
    head      logits = h_{L-1} @ W_head^T + b

Streams join and leave between steps (continuous batching): the active rows are kept compact, rows
0..n-1, so a step costs what n streams cost whatever the capacity; a leaving row is replaced by the
last one. Every per-row quantity (state, next logits, sampling parameters, uniforms) lives in one
float buffer row, so that move is a single copy. A step of a two-layer model is 24 torch ops at
temperature 0-1 without top-k/top-p (8 to sample, 8 per layer, 1 for the head), 33 with everything.

Every row's logits are stably sorted every step although the sort is the dearest sampling op (at
batch 256 on CPU about as dear as the matmuls): the character is the inverse CDF in sorted order,
and even the softmax's sum rounds by that order, so skipping the sort would change texts.

On CPU the step runs natively when `models.native` has been built (`python -m models.native`; `./run`
does it): `decode_step.cpp` calls the same ATen ops in the same order on the same buffers, with the
GIL released for the whole step (the sort and the inverse-CDF choice are plain loops there, exact by
construction), so texts are bitwise the same and the GIL is free for the event loop.

Randomness is `models.sample.generate`'s, stream by stream: a generator seeded with `random_seed`
draws the start character of an empty seed text, then `length` uniforms up front, and character t
is the inverse CDF at uniform t of the same sorted, filtered distribution as `sample._choose`. A
stream's text therefore equals `generate(...).text` and does not depend on its batch neighbours,
except where float rounding (fused vs nn.LSTM matmuls, batched vs single-row products) flips a
near-tie: a greedy near-tie, or a uniform within ~1e-7 of a bucket edge.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from models.char_lstm import CharLSTM
from models.data import UnknownCharacters, Vocabulary
from models.native import NativeDecode, Stepper
from models.native import load as load_native
from models.sample import MAX_RANDOM_SEED, _check_sampling

__all__ = ["DecodeBatch", "FusedCharLSTM", "Stream", "decode"]

# How many uniforms of each stream sit in its buffer row at a time: refilling costs one copy per
# stream every UNIFORM_WINDOW steps.
UNIFORM_WINDOW = 128
# Primed seed texts a batch remembers (vLLM's prefix caching, for whole seed texts): priming costs a
# short prompt about as much as a whole step of 32 streams, and clients mostly repeat their prompts.
# An entry is one state, (V + 2 * L * H) floats.
PRIMED_CACHE_SIZE = 256


@dataclass(frozen=True)
class Stream:
    """One generation request: continue `seed_text` by `length` characters (see `generate`)."""

    seed_text: str
    length: int
    random_seed: int
    temperature: float = 1.0  # 0 is greedy (argmax)
    top_k: int | None = None  # keep the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches top_p

    def __post_init__(self) -> None:
        if not isinstance(self.seed_text, str):
            raise TypeError(f"seed_text must be a string, got {type(self.seed_text).__name__}")
        _check_sampling(self.length, self.temperature, self.top_k, self.top_p)
        s = self.random_seed
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_RANDOM_SEED:
            raise ValueError(f"random_seed must be an integer in [0, 2**64 - 1], got {s!r}")


class FusedCharLSTM:
    """A CharLSTM's weights, rearranged once for one-step decoding (see the module docstring).

    Matrices are stored transposed and contiguous, (in, out), because a one-row product against that
    layout is the fast case of the BLAS (the (out, in) layout used transposed is about 2x slower).
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
                inputs = torch.addmm(bias, outputs, w_cat[:H])  # (T, 4H): the W_ih part of W_cat
                outputs, c = _run_layer(inputs, w_cat[H:])
                hs.append(outputs[-1])
                cs.append(c)
            logits = torch.addmm(self.head_bias, outputs[-1:], self.head_weight)[0]  # (V,)
            return logits, torch.stack(hs), torch.stack(cs)


class _Gates(NamedTuple):
    """Views into one layer's gate pre-activations (rows, 4H), in the (i, f, o, g) order."""

    sigmoid: torch.Tensor  # i, f and o side by side
    i: torch.Tensor
    f: torch.Tensor
    o: torch.Tensor
    g: torch.Tensor

    @classmethod
    def of(cls, gates: torch.Tensor) -> _Gates:
        H = gates.shape[1] // 4
        return cls(
            gates[:, : 3 * H], gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        )


def _cell(gates: _Gates, c: torch.Tensor, tanh_c: torch.Tensor, h: torch.Tensor) -> None:
    """The LSTM cell in place: c = f * c + i * g, h = o * tanh(c), from pre-activations."""
    gates.sigmoid.sigmoid_()
    gates.g.tanh_()
    c.mul_(gates.f).addcmul_(gates.i, gates.g)
    torch.tanh(c, out=tanh_c)
    torch.mul(gates.o, tanh_c, out=h)


def _run_layer(inputs: torch.Tensor, recurrent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer over a sequence from zero state: inputs (T, 4H) -> outputs h (T, H) and the last c (H,)."""
    T, H = inputs.shape[0], recurrent.shape[0]
    h = torch.zeros(T + 1, H, device=inputs.device)  # h[t + 1] is the output at t; h[0] the zero state
    c = torch.zeros(1, H, device=inputs.device)
    gates_buffer = torch.empty(1, 4 * H, device=inputs.device)
    gates, tanh_c = _Gates.of(gates_buffer), torch.empty(1, H, device=inputs.device)
    for t in range(T):
        torch.addmm(inputs[t : t + 1], h[t : t + 1], recurrent, out=gates_buffer)
        _cell(gates, c, tanh_c, h[t + 1 : t + 2])
    return h[1:], c[0]


@dataclass(eq=False)
class _Active:
    """Bookkeeping of one stream in a batch: where it is and how far it has come."""

    slot: int
    stream: Stream
    uniforms: torch.Tensor | None  # (length,) on the device; None for greedy (its uniforms stay 0)
    joined_at: int  # the batch step that draws its first character


class _Views:
    """Every tensor view one step touches, for n active rows, made once per n (views cost ~1 us each)."""

    def __init__(self, batch: DecodeBatch, n: int) -> None:
        b, H, L, V = batch, batch.weights.hidden_size, batch.weights.num_layers, batch.weights.vocab_size
        rows = b._rows[:n]
        self.h = [rows[:, layer * H : (layer + 1) * H] for layer in range(L)]
        self.layer_inputs = [rows[:, (layer - 1) * H : (layer + 1) * H] for layer in range(1, L)]
        self.c = [rows[:, b._c + layer * H : b._c + (layer + 1) * H] for layer in range(L)]
        self.logits = rows[:, b._logits : b._logits + V]
        self.keep_k = rows[:, b._keep_k : b._keep_k + V]
        self.temperature = rows[:, b._temperature : b._temperature + 1]
        self.top_p = rows[:, b._top_p : b._top_p + 1]
        self.has_k = rows[:, b._has_k : b._has_k + 1]
        self.no_k = rows[:, b._has_k + 1 : b._has_k + 2]
        self.uniform = rows[:, b._uniforms : b._uniforms + UNIFORM_WINDOW, None].unbind(1)  # W x (n, 1)
        self.gates = [g[:n] for g in b._gates]
        self.gate_views = [_Gates.of(g) for g in self.gates]
        self.tanh_c = b._tanh_c[:n]
        self.sorted, self.order, self.scaled = b._sorted[:n], b._order[:n], b._scaled[:n]
        self.probs, self.cdf, self.mass_before = b._probs[:n], b._cdf[:n], b._mass_before[:n]
        self.cdf_last = self.cdf[:, V - 1 :]
        self.probs_after = self.probs[:, 1:]
        self.last_nonzero = b._last_nonzero[:n]
        self.last_nonzero_head = self.last_nonzero[:, : V - 1]
        self.outside_top_p = b._outside_top_p[:n]
        self.mass_k, self.target = b._mass_k[:n], b._target[:n]
        self.index, self.ids = b._index[:n], b._ids[:n]
        self.ids_flat = self.ids[:, 0]
        # The native step holds these same views (and the weights), so both steps touch the same memory.
        self.native: Stepper | None = None if b._native is None else b._native.Stepper(self, b.weights)


class DecodeBatch:
    """Up to `capacity` independent streams stepped together: `add`, `step`, `remove`.

    A stream keeps its slot (an int in [0, capacity)) from `add` until it leaves: `step` releases it
    after its `length`-th character, `remove` earlier (a client went away). Freed slots are reused.
    Not thread-safe: one scheduler thread drives a batch.

    `native`: step with the C++ extension (`models.native`) or in PyTorch. None uses it when it is
    built and the weights are on the CPU; False never; True requires it (ValueError on another
    device, RuntimeError when it is not built). Both give bitwise the same ids and state.
    """

    def __init__(
        self, weights: FusedCharLSTM, vocab: Vocabulary, capacity: int, *, native: bool | None = None
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        if len(vocab) != weights.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} characters, the model {weights.vocab_size}")
        self.weights, self.vocab, self.capacity = weights, vocab, capacity
        self._native = _native_decode(native, weights.device)
        H, L, V, device = weights.hidden_size, weights.num_layers, weights.vocab_size, weights.device
        # One float row per stream: h (L*H) | c (L*H) | next logits (V) | top-k keep mask (V) |
        # temperature | top_p | has top_k | has no top_k | uniforms (UNIFORM_WINDOW). h of all
        # layers side by side makes [h_{l-1}, h_l], layer l's matmul input, a plain slice.
        self._c = L * H
        self._logits = 2 * L * H
        self._keep_k = self._logits + V
        self._temperature = self._keep_k + V
        self._top_p = self._temperature + 1
        self._has_k = self._top_p + 1
        self._uniforms = self._has_k + 2
        self._rows = torch.zeros(capacity, self._uniforms + UNIFORM_WINDOW, device=device)

        def scratch(width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.empty(capacity, width, dtype=dtype, device=device)

        # Scratch, overwritten every step.
        self._gates = [scratch(4 * H) for _ in range(L)]
        self._tanh_c = scratch(H)
        self._sorted, self._scaled, self._probs, self._cdf = (scratch(V) for _ in range(4))
        self._order = scratch(V, torch.long)
        self._mass_before, self._outside_top_p = scratch(V), scratch(V, torch.bool)
        # last_nonzero[:, j]: no probability after position j (its last column is always True).
        self._last_nonzero = torch.ones(capacity, V, dtype=torch.bool, device=device)
        self._mass_k, self._target = scratch(1), scratch(1)
        self._index, self._ids = scratch(1, torch.long), scratch(1, torch.long)
        self._views: dict[int, _Views] = {}
        self._active: list[_Active] = []  # by row
        self._row_of_slot: dict[int, int] = {}
        self._free_slots = list(range(capacity - 1, -1, -1))  # pop() hands out the lowest
        self._finishing: dict[int, list[_Active]] = {}  # the step after which they are done
        self._step = 0
        # Active rows that need the optional parts of the sampler: when none does, skip them.
        self._greedy_rows = self._scaled_rows = self._top_k_rows = self._top_p_rows = 0
        # seed text -> h | c | next logits after it; priming is deterministic, so a hit is exact.
        self._primed: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        """The number of active streams."""
        return len(self._active)

    def __contains__(self, slot: object) -> bool:
        return slot in self._row_of_slot

    @property
    def is_full(self) -> bool:
        return not self._free_slots

    @property
    def native(self) -> bool:
        """Whether `step` runs the C++ extension (else the PyTorch ops)."""
        return self._native is not None

    def add(self, stream: Stream) -> int:
        """Prime `stream`'s seed text and give it a free slot; its first character comes with `step`."""
        # Few torch calls on purpose: each one drops and retakes the GIL, and in the API the event loop
        # thread holds it a quarter of the time, so a join costs what its calls wait, not what they do.
        if stream.length == 0:
            raise ValueError("length must be >= 1 to join a batch (a length-0 stream has no characters)")
        if not self._free_slots:
            raise RuntimeError(f"the batch is full ({self.capacity} streams)")
        missing = self.vocab.missing(stream.seed_text)
        if missing:
            raise UnknownCharacters(missing)
        V, device = self.weights.vocab_size, self.weights.device
        # The generator's draws, in generate's order: the start character, then all uniforms.
        generator = torch.Generator().manual_seed(stream.random_seed)
        # An empty seed text starts from a random character: the same state as that one-character seed.
        prefix = stream.seed_text or self.vocab.chars[int(torch.randint(V, (1,), generator=generator))]
        greedy = stream.temperature == 0
        uniforms = None
        if not greedy:
            uniforms = torch.rand(stream.length, generator=generator)
            uniforms = uniforms if device.type == "cpu" else uniforms.to(device)

        primed = self._prime(prefix)  # before taking a slot: a failure here must not lose one
        row, slot = len(self._active), self._free_slots.pop()
        # The top-k keep mask, then the settings; a greedy row samples at uniform 0 with temperature
        # 1: the inverse CDF at 0 is the first id of the stable descending sort, which is argmax (the
        # first maximum), as in `_choose`.
        top_k = V if stream.top_k is None else min(stream.top_k, V)
        settings = [1.0] * top_k + [0.0] * (V - top_k)
        settings += [
            1.0 if greedy else stream.temperature,
            math.inf if stream.top_p is None else stream.top_p,  # cumulative mass >= inf: never cut
            float(stream.top_k is not None),
            float(stream.top_k is None),
        ]
        state = self._rows[row]
        state[: self._keep_k] = primed  # h | c | next logits
        state[self._keep_k : self._uniforms] = torch.tensor(settings)
        active = _Active(slot, stream, uniforms, joined_at=self._step)
        self._load_uniforms(row, active)
        self._active.append(active)
        self._row_of_slot[slot] = row
        self._finishing.setdefault(self._step + stream.length, []).append(active)
        self._count(stream, +1)
        return slot

    def _prime(self, seed_text: str) -> torch.Tensor:
        """The state after `seed_text` as a row's first part, h | c | next logits, from the cache when
        it was primed lately (read-only)."""
        primed = self._primed.get(seed_text)
        if primed is None:
            logits, h, c = self.weights.prime(self.vocab.encode(seed_text))
            primed = self._primed[seed_text] = torch.cat([h.flatten(), c.flatten(), logits])
            if len(self._primed) > PRIMED_CACHE_SIZE:
                self._primed.popitem(last=False)
        else:
            self._primed.move_to_end(seed_text)
        return primed

    def remove(self, slot: int) -> None:
        """Drop the stream in `slot` now; the slot is free for the next `add`."""
        if slot not in self._row_of_slot:
            raise KeyError(f"slot {slot} holds no stream")
        row, last = self._row_of_slot.pop(slot), len(self._active) - 1
        active = self._active[row]
        if row != last:  # keep rows 0..n-1 compact: the last row takes the freed one
            moved = self._active[last]
            self._rows[row] = self._rows[last]
            self._active[row] = moved
            self._row_of_slot[moved.slot] = row
        self._active.pop()
        self._free_slots.append(slot)
        self._count(active.stream, -1)
        finishing = self._finishing.get(active.joined_at + active.stream.length)
        if finishing is not None:
            finishing.remove(active)

    def next_logits(self, slot: int) -> torch.Tensor:
        """A copy of the logits (V,) that the next character of the stream in `slot` is drawn from."""
        logits = self._rows[self._row_of_slot[slot], self._logits : self._logits + self.weights.vocab_size]
        return logits.clone()

    def step(self) -> dict[int, int]:
        """The next character id of every active stream, by slot; finished streams leave the batch."""
        # No inference_mode here: entering it costs several us per call, and nothing it would save
        # happens anyway (the buffers are plain tensors, nothing requires grad).
        n = len(self._active)
        if n == 0:
            return {}
        v = self._views.get(n)
        if v is None:
            v = self._views[n] = _Views(self, n)
        column = self._step % UNIFORM_WINDOW
        if column == 0 and self._step > 0:
            for row, active in enumerate(self._active):
                self._load_uniforms(row, active)

        if v.native is not None:  # _sample and _advance in C++, the GIL released meanwhile
            all_greedy = self._greedy_rows == n
            scaled, top_k, top_p = bool(self._scaled_rows), bool(self._top_k_rows), bool(self._top_p_rows)
            ids = v.native.step(column, all_greedy, scaled, top_k, top_p)
        else:
            if self._greedy_rows == n:  # argmax is what the sampler gives them, in one op instead of eight
                torch.argmax(v.logits, 1, keepdim=True, out=v.ids)
            else:
                self._sample(v, column)
            ids = v.ids_flat.tolist()
            self._advance(v)
        next_ids = {active.slot: i for active, i in zip(self._active, ids, strict=True)}
        self._step += 1
        for active in self._finishing.pop(self._step, []):
            self.remove(active.slot)
        return next_ids

    # decode_step.cpp repeats _sample and _advance (op for op, but for its sort and inverse-CDF loops):
    # change them together.

    def _sample(self, v: _Views, column: int) -> None:
        """Next ids into v.ids as `sample._choose` draws them, every row with its own parameters."""
        torch.sort(v.logits, dim=1, descending=True, stable=True, out=(v.sorted, v.order))
        logits = v.sorted
        if self._scaled_rows:
            logits = torch.div(v.sorted, v.temperature, out=v.scaled)
        torch.softmax(logits, 1, out=v.probs)
        if self._top_k_rows:
            v.probs.mul_(v.keep_k)
            torch.sum(v.probs, 1, keepdim=True, out=v.mass_k)
            # Rows without top_k divide by exactly 1, as `_choose` does not renormalise them.
            torch.addcmul(v.no_k, v.mass_k, v.has_k, out=v.mass_k)
            v.probs.div_(v.mass_k)
        if self._top_p_rows:
            torch.cumsum(v.probs, 1, out=v.mass_before)
            v.mass_before.sub_(v.probs)
            torch.ge(v.mass_before, v.top_p, out=v.outside_top_p)
            v.probs.masked_fill_(v.outside_top_p, 0)
        torch.cumsum(v.probs, 1, out=v.cdf)
        torch.mul(v.uniform[column], v.cdf_last, out=v.target)
        # `_choose` clamps the index to the last non-zero probability (u * total can round up to
        # total). Non-zero probabilities are a prefix (sorted, then cut from the tail), so an
        # infinite CDF from that last one on gives the same index in two ops instead of four.
        torch.eq(v.probs_after, 0, out=v.last_nonzero_head)
        v.cdf.masked_fill_(v.last_nonzero, math.inf)
        torch.searchsorted(v.cdf, v.target, right=True, out=v.index)
        torch.gather(v.order, 1, v.index, out=v.ids)

    def _advance(self, v: _Views) -> None:
        """Feed the chosen ids: new state and next logits for every active row, in place."""
        w = self.weights
        for layer in range(w.num_layers):
            gates = v.gates[layer]
            if layer == 0:
                torch.index_select(w.input_table, 0, v.ids_flat, out=gates)
                gates.addmm_(v.h[0], w.recurrent_0)
            else:
                weight, bias = w.stacked[layer - 1]
                torch.addmm(bias, v.layer_inputs[layer - 1], weight, out=gates)
            _cell(v.gate_views[layer], v.c[layer], v.tanh_c, v.h[layer])
        torch.addmm(w.head_bias, v.h[-1], w.head_weight, out=v.logits)

    def _load_uniforms(self, row: int, active: _Active) -> None:
        """Put the uniforms of the steps up to the window's end into the row's window columns."""
        start = self._step % UNIFORM_WINDOW
        window = self._rows[row, self._uniforms + start : self._uniforms + UNIFORM_WINDOW]
        if active.uniforms is None:
            window.zero_()
            return
        t = self._step - active.joined_at
        chunk = active.uniforms[t : t + UNIFORM_WINDOW - start]
        window[: len(chunk)] = chunk

    def _count(self, stream: Stream, sign: int) -> None:
        self._greedy_rows += sign * (stream.temperature == 0)
        self._scaled_rows += sign * (stream.temperature not in (0, 1))
        self._top_k_rows += sign * (stream.temperature != 0 and stream.top_k is not None)
        self._top_p_rows += sign * (stream.temperature != 0 and stream.top_p is not None)


def _native_decode(native: bool | None, device: torch.device) -> NativeDecode | None:
    """The extension a DecodeBatch steps with (see its `native` argument), or None for PyTorch."""
    if native is False:
        return None
    if device.type != "cpu":
        if native:
            raise ValueError(f"the native decode step runs on the CPU only; the weights are on {device}")
        return None
    module = load_native()
    if module is None and native:
        raise RuntimeError(
            "the native decode step is not built for this source and torch: "
            "run `python -m models.native` (./run does it)"
        )
    return module


def decode(
    weights: FusedCharLSTM,
    vocab: Vocabulary,
    streams: Iterable[Stream],
    capacity: int,
    *,
    native: bool | None = None,
) -> list[str]:
    """Every stream's text, streams joining a `capacity` batch in order as slots free up."""
    streams = list(streams)
    texts: list[list[str]] = [[] for _ in streams]
    batch = DecodeBatch(weights, vocab, capacity, native=native)
    owner: dict[int, int] = {}  # slot -> index into streams
    pending = iter(i for i, s in enumerate(streams) if s.length > 0)
    next_index = next(pending, None)
    while next_index is not None or len(batch):
        while next_index is not None and not batch.is_full:
            owner[batch.add(streams[next_index])] = next_index
            next_index = next(pending, None)
        for slot, i in batch.step().items():
            texts[owner[slot]].append(vocab.chars[i])
    return ["".join(t) for t in texts]
