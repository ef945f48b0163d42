"""The sampler: the next character id of each row from its logits, every row with its own settings.

THE RULE. This module is the specification of sampling, and the only sampler in Python: the one-stream
reference `models.sample.generate` and the decode batch's PyTorch step both call `sample`, so their
texts are bitwise the same by construction. `models/native/decode_step.cpp` is its C++ twin (the same
ATen ops in the same order on the same buffers; the stable sort and the inverse-CDF choice as plain
loops whose result is exact). A new sampling parameter therefore lands in `sample` here and in
decode_step.cpp in the same commit, with a case in tests/models/test_native_step.py that compares the
two steps bit for bit across mixed batches (rows with and without the parameter side by side, joining
and leaving).

Logit processors are not sampling parameters: the penalties and the n-gram ban
(models/decode/processors.py) rewrite a row's logits BEFORE the sampler, in one shared Python function
that the batch runs on its logits rows before either step and that `generate` runs too; both steps then
read the same processed logits, so they need no C++. The raw log-probabilities
(models/decode/logprobs.py) are read before the processors, from the same buffer. A parameter that can
be written as a change of the logits belongs there, not here.

What `sample` computes, row by row (temperature 0 is greedy, the argmax):

    sorted, order = stable descending sort of the logits       ties in id order: top_k=1 is the argmax
    probs = softmax(sorted / temperature)
    top_k: probs beyond the k first set to 0, the rest renormalised
    top_p: a probability set to 0 once the mass before it reaches top_p (the first always stays)
    id = order[first j with cdf[j] > u * cdf[V-1]], j at most the last non-zero probability

Every row's logits are sorted every step although the sort is the dearest op (at batch 256 on CPU
about as dear as the matmuls): the character is the inverse CDF in sorted order, and even the
softmax's sum rounds by that order, so skipping the sort would change texts.

A row's settings are floats (`settings_row`), so that a batch keeps them in the stream's row of its
row table. The optional parts run only when some row needs them (`Needs`): a greedy batch is one
argmax, a batch at temperature 1 without top-k/top-p skips scaling and both filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import torch

from models.config import MIN_TEMPERATURE

# A row's settings after its top-k keep mask (V floats): temperature, top_p, has top_k, has no top_k.
SETTINGS_AFTER_KEEP_K = 4


def check_sampling(length: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError naming the first parameter that no sampler accepts."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    if (
        not _is_number(temperature)
        or not math.isfinite(temperature)
        or not (temperature == 0 or temperature >= MIN_TEMPERATURE)
    ):
        raise ValueError(
            f"temperature must be 0 (greedy) or a finite number >= {MIN_TEMPERATURE}, got {temperature!r}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def settings_row(vocab_size: int, temperature: float, top_k: int | None, top_p: float | None) -> list[float]:
    """A row's settings as `SamplerBuffers.settings` holds them: the top-k keep mask (V), temperature,
    top_p, has top_k, has no top_k.

    A greedy row samples at uniform 0 with temperature 1: the inverse CDF at 0 is the first id of the
    stable descending sort, which is the argmax (the first maximum).
    """
    V = vocab_size
    k = V if top_k is None else min(top_k, V)
    return (
        [1.0] * k
        + [0.0] * (V - k)
        + [
            1.0 if temperature == 0 else temperature,
            math.inf if top_p is None else top_p,  # a cumulative mass >= inf: never cut
            float(top_k is not None),
            float(top_k is None),
        ]
    )


class Needs(NamedTuple):
    """Which parts of `sample` some row needs; the others are skipped (they would change nothing)."""

    all_greedy: bool  # every row greedy: one argmax instead of the whole sampler
    scaled: bool  # a temperature other than 0 and 1
    top_k: bool
    top_p: bool

    @classmethod
    def of(cls, temperature: float, top_k: int | None, top_p: float | None) -> Needs:
        """What rows that all have these settings need."""
        sampled = temperature != 0
        return cls(
            not sampled,
            temperature not in (0, 1),
            sampled and top_k is not None,
            sampled and top_p is not None,
        )


class RowCounts:
    """How many of a batch's rows need each optional part of `sample`, kept as rows join and leave."""

    def __init__(self) -> None:
        self.greedy = self.scaled = self.top_k = self.top_p = 0

    def count(self, temperature: float, top_k: int | None, top_p: float | None, sign: int) -> None:
        needs = Needs.of(temperature, top_k, top_p)
        self.greedy += sign * needs.all_greedy
        self.scaled += sign * needs.scaled
        self.top_k += sign * needs.top_k
        self.top_p += sign * needs.top_p

    def needs(self, rows: int) -> Needs:
        return Needs(self.greedy == rows, bool(self.scaled), bool(self.top_k), bool(self.top_p))


@dataclass(eq=False)
class SamplerBuffers:
    """Everything `sample` reads and writes for n rows: inputs, scratch, and the chosen ids.

    In a batch the inputs are views into its row table, kept between steps; `over` allocates the
    scratch. decode_step.cpp reads these fields by name and checks them when its Stepper is made.
    """

    logits: torch.Tensor  # (n, V) float32, the next logits
    settings: torch.Tensor  # (n, V + 4) float32, `settings_row` per row
    uniforms: torch.Tensor  # (n, W) float32: column c is the uniform of every row at window column c
    sorted: torch.Tensor  # (n, V) float32 scratch: the logits sorted descending
    order: torch.Tensor  # (n, V) int64 scratch: their ids
    scaled: torch.Tensor  # (n, V) float32 scratch: sorted / temperature
    probs: torch.Tensor  # (n, V) float32 scratch
    cdf: torch.Tensor  # (n, V) float32 scratch
    mass_before: torch.Tensor  # (n, V) float32 scratch: the probability before each position
    outside_top_p: torch.Tensor  # (n, V) bool scratch
    last_nonzero: torch.Tensor  # (n, V) bool: no probability after position j; the last column True
    mass_k: torch.Tensor  # (n, 1) float32 scratch: the mass kept by top_k
    target: torch.Tensor  # (n, 1) float32 scratch: uniform * total mass
    index: torch.Tensor  # (n, 1) int64 scratch: the chosen sorted position
    ids: torch.Tensor  # (n, 1) int64: the chosen ids, the output
    # Views of the settings and scratch, made once (a view costs ~1 us, a step is ~25 ops).
    keep_k: torch.Tensor = field(init=False)  # (n, V)
    temperature: torch.Tensor = field(init=False)  # (n, 1)
    top_p: torch.Tensor = field(init=False)  # (n, 1)
    has_k: torch.Tensor = field(init=False)  # (n, 1)
    no_k: torch.Tensor = field(init=False)  # (n, 1)
    uniform: tuple[torch.Tensor, ...] = field(init=False)  # W x (n, 1)
    ids_flat: torch.Tensor = field(init=False)  # (n,)
    cdf_last: torch.Tensor = field(init=False)  # (n, 1)
    probs_after: torch.Tensor = field(init=False)  # (n, V - 1): probs[:, 1:]
    last_nonzero_head: torch.Tensor = field(init=False)  # (n, V - 1): last_nonzero[:, :-1]

    def __post_init__(self) -> None:
        V = self.logits.shape[1]
        self.keep_k = self.settings[:, :V]
        self.temperature, self.top_p = self.settings[:, V : V + 1], self.settings[:, V + 1 : V + 2]
        self.has_k, self.no_k = self.settings[:, V + 2 : V + 3], self.settings[:, V + 3 : V + 4]
        self.uniform = self.uniforms[:, :, None].unbind(1)
        self.ids_flat = self.ids[:, 0]
        self.cdf_last = self.cdf[:, V - 1 :]
        self.probs_after = self.probs[:, 1:]
        self.last_nonzero_head = self.last_nonzero[:, : V - 1]

    @classmethod
    def over(cls, logits: torch.Tensor, settings: torch.Tensor, uniforms: torch.Tensor) -> SamplerBuffers:
        """Buffers for the rows of these inputs, with newly allocated scratch."""
        (n, V), device = logits.shape, logits.device

        def scratch(width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.empty(n, width, dtype=dtype, device=device)

        return cls(
            logits, settings, uniforms,
            sorted=scratch(V), order=scratch(V, torch.long), scaled=scratch(V), probs=scratch(V),
            cdf=scratch(V), mass_before=scratch(V), outside_top_p=scratch(V, torch.bool),
            last_nonzero=torch.ones(n, V, dtype=torch.bool, device=device),
            mass_k=scratch(1), target=scratch(1), index=scratch(1, torch.long), ids=scratch(1, torch.long),
        )  # fmt: skip

    def head(self, n: int) -> SamplerBuffers:
        """The same buffers for their first n rows (views: the same memory)."""
        return SamplerBuffers(*(getattr(self, f.name)[:n] for f in fields(self) if f.init))


def sample(b: SamplerBuffers, column: int, needs: Needs) -> None:
    """The next id of every row into b.ids, at the uniforms of window column `column`."""
    if needs.all_greedy:  # argmax is what the sampler gives them, in one op instead of eight
        torch.argmax(b.logits, 1, keepdim=True, out=b.ids)
        return
    torch.sort(b.logits, dim=1, descending=True, stable=True, out=(b.sorted, b.order))
    logits = b.sorted
    if needs.scaled:  # rows at temperature 1 divide by exactly 1
        logits = torch.div(b.sorted, b.temperature, out=b.scaled)
    torch.softmax(logits, 1, out=b.probs)
    if needs.top_k:
        b.probs.mul_(b.keep_k)
        torch.sum(b.probs, 1, keepdim=True, out=b.mass_k)
        # Rows without top_k divide by exactly 1: they are not renormalised.
        torch.addcmul(b.no_k, b.mass_k, b.has_k, out=b.mass_k)
        b.probs.div_(b.mass_k)
    if needs.top_p:
        torch.cumsum(b.probs, 1, out=b.mass_before)
        b.mass_before.sub_(b.probs)
        torch.ge(b.mass_before, b.top_p, out=b.outside_top_p)
        b.probs.masked_fill_(b.outside_top_p, 0)
    torch.cumsum(b.probs, 1, out=b.cdf)
    torch.mul(b.uniform[column], b.cdf_last, out=b.target)
    # u * total can round up to total: never step past the last non-zero probability. Non-zero
    # probabilities are a prefix (sorted, then cut from the tail), so an infinite CDF from that last
    # one on clamps the index in two ops.
    torch.eq(b.probs_after, 0, out=b.last_nonzero_head)
    b.cdf.masked_fill_(b.last_nonzero, math.inf)
    torch.searchsorted(b.cdf, b.target, right=True, out=b.index)
    torch.gather(b.order, 1, b.index, out=b.ids)
