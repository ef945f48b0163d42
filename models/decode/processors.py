"""Logit processors: the penalties and the n-gram ban, applied to a row's logits before the sampler.

They change the logits, not the sampler: `process` runs on the batch's logits rows before either step
(the PyTorch `sampler.sample` or the native one) reads them, so both steps see the same modified
logits and stay bitwise equal without a line of C++ (the sampler rule, sampler.py). The one-stream
reference `models.sample.generate` calls the same functions, so its texts match the batch's.

What they compute, per row, in this order (V logits; `context`: the seed text, or the drawn start
character of an empty one, then every generated character):

    window      the last `penalty_window` characters of the context; count[c] = occurrences of c in it
    repetition  for count[c] > 0: logit / r if logit > 0, else logit * r   (CTRL, Keskar et al. 2019;
                transformers' RepetitionPenaltyLogitsProcessor; vLLM)
    frequency   logit -= frequency * count[c]                               (OpenAI; vLLM's order)
    presence    logit -= presence * [count[c] > 0]
    n-gram ban  logit = -inf for every c that would complete an n-gram (n = no_repeat_ngram_size) that
                already occurs anywhere in the context (transformers' NoRepeatNGramLogitsProcessor).
                When that bans every character (n = 1 once the whole vocabulary has been seen), the ban
                is lifted for that step: a step must choose something, and the model's own choice is
                the least surprising one.

Why a bounded window: a character model meets most of its vocabulary within a few hundred characters,
so counts over the whole text would soon penalise every letter and bend the spelling of ordinary
words; the window (64 by default, like a line or two of text) penalises what the model is looping on
now. vLLM counts presence/frequency over the generated text only, and repetition over prompt and
output; here all three read the same window of seed text + generated text, so a loop that the seed
text started is penalised from the first character.

A row without penalties in a penalised batch goes through the same ops bitwise unchanged: its counts
are 0, so its repetition factor is 1 (x / 1 and x * 1 are exact) and its offsets are +0.0 (x - 0.0 is
exact, -0.0 and infinities included; settings store +0.0, never -0.0, which would turn -0.0 into +0.0).
The ops run only when some row needs them (`PenaltyNeeds`): a batch without penalties pays nothing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import torch

from models.decode.limits import (
    DEFAULT_PENALTY_WINDOW,
    MAX_ADDITIVE_PENALTY,
    MAX_NO_REPEAT_NGRAM_SIZE,
    MAX_PENALTY_WINDOW,
    MAX_REPETITION_PENALTY,
)

# A row's penalty settings after its window counts (V floats): repetition, presence, frequency.
PENALTY_SETTINGS = 3


@dataclass(frozen=True)
class Penalties:
    """A stream's penalty settings (see the module docstring); the defaults are off."""

    repetition: float = 1.0  # (0, 2]; 1 is off, > 1 discourages repeats, < 1 encourages them
    presence: float = 0.0  # [-2, 2]
    frequency: float = 0.0  # [-2, 2]
    no_repeat_ngram_size: int = 0  # 0..64; 0 is off
    window: int = DEFAULT_PENALTY_WINDOW  # 1..1024 characters, for the three counted penalties

    def __post_init__(self) -> None:
        r, n, w = self.repetition, self.no_repeat_ngram_size, self.window
        if not _is_number(r) or not 0 < r <= MAX_REPETITION_PENALTY:
            raise ValueError(f"repetition_penalty must be in (0, {MAX_REPETITION_PENALTY:g}], got {r!r}")
        for name, value in (("presence_penalty", self.presence), ("frequency_penalty", self.frequency)):
            if not _is_number(value) or not -MAX_ADDITIVE_PENALTY <= value <= MAX_ADDITIVE_PENALTY:
                raise ValueError(f"{name} must be in [-2, 2], got {value!r}")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NO_REPEAT_NGRAM_SIZE:
            raise ValueError(f"no_repeat_ngram_size must be an integer in [0, 64], got {n!r}")
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_PENALTY_WINDOW:
            raise ValueError(f"penalty_window must be an integer in [1, 1024], got {w!r}")

    @property
    def counted(self) -> bool:
        """Whether a penalty reads the window's counts."""
        return self.repetition != 1 or self.presence != 0 or self.frequency != 0

    @property
    def active(self) -> bool:
        return self.counted or self.no_repeat_ngram_size > 0


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class PenaltyNeeds(NamedTuple):
    """Which parts of `process` some row needs; the others are skipped (they would change nothing)."""

    repetition: bool
    additive: bool  # presence or frequency
    ngram: bool

    @property
    def any(self) -> bool:
        return self.repetition or self.additive or self.ngram

    @classmethod
    def of(cls, p: Penalties) -> PenaltyNeeds:
        return cls(p.repetition != 1, p.presence != 0 or p.frequency != 0, p.no_repeat_ngram_size > 0)


class PenaltyCounts:
    """How many of a batch's rows need each part of `process`, kept as rows join and leave."""

    def __init__(self) -> None:
        self.repetition = self.additive = self.ngram = 0

    def count(self, p: Penalties, sign: int) -> None:
        needs = PenaltyNeeds.of(p)
        self.repetition += sign * needs.repetition
        self.additive += sign * needs.additive
        self.ngram += sign * needs.ngram

    def needs(self) -> PenaltyNeeds:
        return PenaltyNeeds(bool(self.repetition), bool(self.additive), bool(self.ngram))


class History:
    """One penalised row's context as its penalties read it: the window, and the n-grams seen.

    Plain Python, kept beside the row (a batch's `Active` entry, which moves with its row); the window
    counts themselves live in the batch's row table (`penalty_row`), updated by `record`.
    """

    def __init__(self, penalties: Penalties, context: Sequence[int]) -> None:
        self.penalties = penalties
        self.window: deque[int] | None = deque(context[-penalties.window :]) if penalties.counted else None
        n = self.n = penalties.no_repeat_ngram_size
        self.ngrams: dict[tuple[int, ...], set[int]] = {}  # the n-1 characters before -> what followed
        self.tail: deque[int] = deque(maxlen=max(n - 1, 0))  # the last n-1 characters
        if n:
            for i in range(len(context) - n + 1):
                self.ngrams.setdefault(tuple(context[i : i + n - 1]), set()).add(context[i + n - 1])
            self.tail.extend(context[len(context) - (n - 1) :] if n > 1 else ())

    def counts(self, vocab_size: int) -> list[float]:
        """The window's counts per character id (zeros when no penalty counts)."""
        counts = [0.0] * vocab_size
        for i in self.window or ():
            counts[i] += 1
        return counts

    def banned(self, vocab_size: int) -> set[int]:
        """The ids the n-gram ban forbids at the next step; none when it would forbid every one."""
        if not self.n or len(self.tail) < self.n - 1:
            return set()
        banned = self.ngrams.get(tuple(self.tail), set())
        return set() if len(banned) >= vocab_size else banned

    def push(self, i: int) -> int | None:
        """Append a generated id; the id that left the window, if one did."""
        if self.n:
            self.ngrams.setdefault(tuple(self.tail), set()).add(i)
            if self.n > 1:
                self.tail.append(i)
        if self.window is None:
            return None
        self.window.append(i)
        return self.window.popleft() if len(self.window) > self.penalties.window else None


def penalty_row(vocab_size: int, history: History | None) -> list[float]:
    """A row's penalty part as `PenaltyBuffers` holds it: window counts (V), repetition, presence,
    frequency. Neutral (zeros, 1, +0.0, +0.0) without a history."""
    if history is None:
        return [0.0] * vocab_size + [1.0, 0.0, 0.0]
    p = history.penalties
    # + 0.0 turns a -0.0 setting into +0.0: x - (-0.0) would turn a -0.0 logit into +0.0.
    return history.counts(vocab_size) + [float(p.repetition), p.presence + 0.0, p.frequency + 0.0]


@dataclass(eq=False)
class PenaltyBuffers:
    """Everything `process` and `record` read and write for n rows. In a batch the counts and settings
    are views into its row table, so they move with the row; `over` allocates the scratch."""

    counts: torch.Tensor  # (n, V) float32: window counts, whole numbers
    settings: torch.Tensor  # (n, 3) float32: `penalty_row`'s last three
    absent: torch.Tensor  # (n, V) bool scratch: count == 0
    positive: torch.Tensor  # (n, V) bool scratch: logit > 0
    factor: torch.Tensor  # (n, V) float32 scratch: the repetition penalty where count > 0, else 1
    divided: torch.Tensor  # (n, V) float32 scratch
    offset: torch.Tensor  # (n, V) float32 scratch
    repetition: torch.Tensor = field(init=False)  # (n, 1)
    presence: torch.Tensor = field(init=False)  # (n, 1)
    frequency: torch.Tensor = field(init=False)  # (n, 1)

    def __post_init__(self) -> None:
        self.repetition, self.presence, self.frequency = self.settings[:, :, None].unbind(1)

    @classmethod
    def over(cls, counts: torch.Tensor, settings: torch.Tensor) -> PenaltyBuffers:
        (n, V), device = counts.shape, counts.device

        def scratch(dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.empty(n, V, dtype=dtype, device=device)

        return cls(
            counts, settings, absent=scratch(torch.bool), positive=scratch(torch.bool),
            factor=scratch(), divided=scratch(), offset=scratch(),
        )  # fmt: skip

    def head(self, n: int) -> PenaltyBuffers:
        """The same buffers for their first n rows (views: the same memory)."""
        return PenaltyBuffers(*(getattr(self, f.name)[:n] for f in fields(self) if f.init))


def process(
    logits: torch.Tensor, b: PenaltyBuffers, needs: PenaltyNeeds, histories: Sequence[History | None]
) -> None:
    """Apply every row's penalties and n-gram ban to `logits` (n, V) in place (order: module docstring)."""
    if needs.repetition:
        torch.eq(b.counts, 0, out=b.absent)
        b.factor.copy_(b.repetition.expand_as(b.factor))
        b.factor.masked_fill_(b.absent, 1.0)
        torch.gt(logits, 0, out=b.positive)
        torch.div(logits, b.factor, out=b.divided)
        logits.mul_(b.factor)
        torch.where(b.positive, b.divided, logits, out=logits)
    if needs.additive:
        torch.mul(b.counts, b.frequency, out=b.offset)
        logits.sub_(b.offset)
        torch.clamp(b.counts, max=1, out=b.offset)  # [count > 0]: counts are whole numbers >= 0
        b.offset.mul_(b.presence)
        logits.sub_(b.offset)
    if needs.ngram:
        V = logits.shape[1]
        rows: list[int] = []
        ids: list[int] = []
        for row, history in enumerate(histories):
            if history is not None:
                banned = history.banned(V)
                rows += [row] * len(banned)
                ids += sorted(banned)
        if rows:
            device = logits.device
            index = (torch.tensor(rows, device=device), torch.tensor(ids, device=device))
            logits.index_put_(index, torch.tensor(-math.inf, device=device))


def record(b: PenaltyBuffers, ids: Sequence[int], histories: Sequence[History | None]) -> None:
    """The rows' chosen ids join their histories and window counts (one op for all the counts)."""
    rows: list[int] = []
    columns: list[int] = []
    deltas: list[float] = []
    for row, (i, history) in enumerate(zip(ids, histories, strict=True)):
        if history is None:
            continue
        left = history.push(i)
        if history.window is not None:
            rows.append(row)
            columns.append(i)
            deltas.append(1.0)
            if left is not None:
                rows.append(row)
                columns.append(left)
                deltas.append(-1.0)
    if rows:
        device = b.counts.device
        index = (torch.tensor(rows, device=device), torch.tensor(columns, device=device))
        b.counts.index_put_(index, torch.tensor(deltas, device=device), accumulate=True)
