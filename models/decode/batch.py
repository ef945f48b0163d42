"""`DecodeBatch`: up to `capacity` streams stepped together (slots, buffers, sampler and LSTM step
tied together), and `decode`, which runs a list of streams through one."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from models.data import UnknownCharacters, Vocabulary
from models.decode.buffers import UNIFORM_WINDOW, BatchBuffers
from models.decode.fused import FusedCharLSTM
from models.decode.logprobs import CharLogprobs, RawLogprobs
from models.decode.processors import History, PenaltyCounts, penalty_row, process, record
from models.decode.sampler import RowCounts, sample, settings_row
from models.decode.slots import Active, PrefixCache, SlotTable
from models.decode.state import StartState
from models.decode.stream import Stream
from models.native import NativeDecode, Stepper
from models.native import load as load_native


class DecodeBatch:
    """Up to `capacity` independent streams stepped together: `add`, `step`, `remove`.

    A stream keeps its slot (an int in [0, capacity)) from `add` until it leaves: `step` releases it
    after its `length`-th character, `remove` earlier (a client went away). Freed slots are reused.
    Not thread-safe: one engine thread drives a batch.

    `native`: step with the C++ extension (`models.native`) or in PyTorch. None uses it when it is
    built and the weights are on the CPU; False never; True requires it (ValueError on another
    device, RuntimeError when it is not built). Both give bitwise the same ids and state.

    Each step first takes the raw log-probabilities of the rows that ask for them (`last_logprobs`),
    then applies the penalties of the rows that have them to the logits in place
    (models/decode/processors.py), then runs the sampler and the LSTM step, native or not: both read
    the same processed logits, so they stay bitwise equal.
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
        self.buffers = BatchBuffers(weights, capacity)
        self.slots = SlotTable(capacity)
        self.prefix_cache = PrefixCache()
        self._counts = RowCounts()  # which optional sampler parts the active rows need
        self._penalty_counts = PenaltyCounts()  # which penalties the active rows need
        self._logprob_rows = 0  # how many active rows ask for log-probabilities
        # After each step: by slot, the chosen character's raw log-probability and the most likely
        # alternatives, for the rows whose stream asked (`Stream.logprobs`); empty when none did.
        self.last_logprobs: dict[int, CharLogprobs] = {}
        # After each step: by slot, the state h | c (2 * L * H,) of the streams that left with it and
        # asked for it (`add(..., keep_state=True)`): a session's state after its generated text.
        self.last_states: dict[int, torch.Tensor] = {}
        self._clamped_rows = 0  # active streams with clamps (models/decode/state.py)
        self._steppers: dict[int, Stepper] = {}  # the native step of n rows, made once per n
        self._step = 0

    def __len__(self) -> int:
        """The number of active streams."""
        return len(self.slots)

    def __contains__(self, slot: object) -> bool:
        return slot in self.slots

    @property
    def is_full(self) -> bool:
        return self.slots.is_full

    @property
    def native(self) -> bool:
        """Whether `step` runs the C++ extension (else the PyTorch ops)."""
        return self._native is not None

    def add(self, stream: Stream, start: StartState | None = None, *, keep_state: bool = False) -> int:
        """Prime `stream`'s seed text and give it a free slot; its first character comes with `step`.

        With `start` the stream continues that state instead (its seed text must be empty: the state
        is the text), holding its clamps; `keep_state`: `last_states` gives its state when it leaves.
        """
        # Few torch calls on purpose: each one drops and retakes the GIL, and in the API the event loop
        # thread holds it a quarter of the time, so a join costs what its calls wait, not what they do.
        if stream.length == 0:
            raise ValueError("length must be >= 1 to join a batch (a length-0 stream has no characters)")
        if self.slots.is_full:
            raise RuntimeError(f"the batch is full ({self.capacity} streams)")
        missing = self.vocab.missing(stream.seed_text)
        if missing:
            raise UnknownCharacters(missing)
        if start is not None:
            self._check_start(stream, start)
        V, device = self.weights.vocab_size, self.weights.device
        # The generator's draws, in generate's order: the start character, then all uniforms.
        generator = torch.Generator().manual_seed(stream.random_seed)
        # An empty seed text starts from a random character: the same state as that one-character seed.
        # A start state is the text it stands for: nothing is drawn, as for a non-empty seed text.
        prefix = ""
        if start is None:
            prefix = stream.seed_text or self.vocab.chars[int(torch.randint(V, (1,), generator=generator))]
        uniforms = None
        if stream.temperature != 0:  # a greedy row samples at uniform 0
            uniforms = torch.rand(stream.length, generator=generator)
            uniforms = uniforms if device.type == "cpu" else uniforms.to(device)
        penalties = stream.penalties
        # The penalties' context starts with the primed prefix, a drawn start character included.
        history = History(penalties, self.vocab.encode(prefix).tolist()) if penalties.active else None
        # Everything that can fail comes before the slot is taken: a failure must not lose one.
        if start is None:
            state = self.prefix_cache.get(prefix, self._prime)
        else:
            state = start.row if start.row is not None else self.weights.start_row(start)
        settings = settings_row(V, stream.temperature, stream.top_k, stream.top_p) + penalty_row(V, history)
        self.buffers.write(len(self.slots), state, settings)
        row, active = self.slots.join(stream, uniforms, self._step, history)
        if start is not None:
            active.clamps = start.clamps
        active.keep_state = keep_state
        self._load_uniforms(row, active)
        self._count(active, +1)
        return active.slot

    def _check_start(self, stream: Stream, start: StartState) -> None:
        if stream.seed_text:
            raise ValueError("a stream that continues a start state has no seed text (the state is its text)")
        shape = (self.weights.num_layers, self.weights.hidden_size)
        for name, tensor in (("h", start.h), ("c", start.c)):
            if tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
                raise ValueError(
                    f"start state {name}: expected float32 {shape}, got {tensor.dtype} {tuple(tensor.shape)}"
                )
        for clamp in start.clamps:
            clamp.check(*shape)
        row_size = 2 * shape[0] * shape[1] + self.weights.vocab_size
        if start.row is not None and (
            tuple(start.row.shape) != (row_size,) or start.row.device != self.weights.device
        ):
            raise ValueError(
                f"start row: expected ({row_size},) on {self.weights.device}, "
                f"got {tuple(start.row.shape)} on {start.row.device}"
            )

    def _count(self, active: Active, sign: int) -> None:
        stream = active.stream
        self._clamped_rows += sign * bool(active.clamps)
        self._counts.count(stream.temperature, stream.top_k, stream.top_p, sign)
        if active.history is not None:
            self._penalty_counts.count(active.history.penalties, sign)
        self._logprob_rows += sign * (stream.logprobs > 0)

    def _prime(self, seed_text: str) -> torch.Tensor:
        """The state after `seed_text` as a row's first part: h | c | next logits."""
        logits, h, c = self.weights.prime(self.vocab.encode(seed_text))
        return torch.cat([h.flatten(), c.flatten(), logits])

    def remove(self, slot: int) -> None:
        """Drop the stream in `slot` now; the slot is free for the next `add`."""
        active, row, moved = self.slots.leave(slot)
        if moved is not None:
            self.buffers.move(moved, row)
        self._count(active, -1)

    def state_of(self, slot: int) -> torch.Tensor:
        """A copy of the state h | c (2 * L * H,) of the stream in `slot`, after its latest character."""
        row = self.slots.row_of(slot)
        return self.buffers.rows[row, : self.buffers.layout.logits.start].clone()

    def next_logits(self, slot: int) -> torch.Tensor:
        """A copy of the model's logits (V,) for the next character of the stream in `slot` (before the
        step applies its penalties)."""
        return self.buffers.rows[self.slots.row_of(slot), self.buffers.layout.logits].clone()

    def step(self) -> dict[int, int]:
        """The next character id of every active stream, by slot; finished streams leave the batch."""
        # No inference_mode here: entering it costs several us per call, and nothing it would save
        # happens anyway (the buffers are plain tensors, nothing requires grad).
        n = len(self.slots)
        if self.last_logprobs:
            self.last_logprobs = {}
        if self.last_states:
            self.last_states = {}
        if n == 0:
            return {}
        b = self.buffers.for_rows(n)
        column = self._step % UNIFORM_WINDOW
        if column == 0 and self._step > 0:
            for row, active in enumerate(self.slots.active):
                self._load_uniforms(row, active)
        raw = None
        if self._logprob_rows:  # from the model's logits, before the penalties change them
            asking = [(row, a.stream.logprobs) for row, a in enumerate(self.slots.active)]
            rows, top = zip(*[(row, k) for row, k in asking if k], strict=True)
            raw = RawLogprobs(b.sampling.logits, rows, top)
        penalty_needs = self._penalty_counts.needs()
        histories = None
        if penalty_needs.any:  # shared by both steps: they read the processed logits
            histories = [active.history for active in self.slots.active]
            process(b.sampling.logits, b.penalties, penalty_needs, histories)
        needs = self._counts.needs(n)
        if self._native is not None:  # the sampler and the LSTM step in C++, the GIL released meanwhile
            stepper = self._steppers.get(n)
            if stepper is None:
                stepper = self._steppers[n] = self._native.Stepper(b, self.weights)
            ids = stepper.step(column, *needs)
        else:
            sample(b.sampling, column, needs)
            ids = b.sampling.ids_flat.tolist()
            self.weights.advance(b)
        rows_now = self.slots.active
        next_ids = {a.slot: i for a, i in zip(rows_now, ids, strict=True)}
        if histories is not None:
            record(b.penalties, ids, histories)
        if raw is not None:
            taken = zip(raw.rows, raw.take(ids), strict=True)
            self.last_logprobs = {rows_now[row].slot: lp for row, lp in taken}
        self._step += 1
        if self._clamped_rows:  # the same Python writes after either step: both stay bitwise equal
            self._hold_clamps()
        for active in self.slots.leaving_after(self._step):
            if active.keep_state:
                self.last_states[active.slot] = self.state_of(active.slot)
            self.remove(active.slot)
        return next_ids

    def _hold_clamps(self) -> None:
        """Set each clamped cell unit after the characters its clamp still covers (models/decode/state.py)."""
        rows, c = self.buffers.rows, self.buffers.layout.c
        for row, active in enumerate(self.slots.active):
            consumed = self._step - active.joined_at  # characters this stream has read, this one included
            for clamp in active.clamps:
                if consumed <= clamp.steps:
                    rows[row, c[clamp.layer].start + clamp.unit] = clamp.value

    def _load_uniforms(self, row: int, active: Active) -> None:
        """Put the stream's uniforms of the steps up to the window's end into its row."""
        start = self._step % UNIFORM_WINDOW
        uniforms = active.uniforms
        if uniforms is not None:
            t = self._step - active.joined_at
            uniforms = uniforms[t : t + UNIFORM_WINDOW - start]
        self.buffers.load_uniforms(row, start, uniforms)


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
