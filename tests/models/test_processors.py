"""The logit processors (penalties, n-gram ban): exact values against a hand-written reference, the
window and n-gram bookkeeping, and that each one breaks the loop a greedy char-LSTM falls into; and the
log-probabilities a batch reports, read from the raw logits before them."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from models.char_lstm import CharLSTM
from models.data import Vocabulary
from models.decode.batch import DecodeBatch, decode
from models.decode.fused import FusedCharLSTM
from models.decode.processors import (
    History,
    Penalties,
    PenaltyBuffers,
    PenaltyNeeds,
    penalty_row,
    process,
    record,
)
from models.decode.stream import Stream
from models.sample import generate

V = 12


def reference(logits: np.ndarray, context: list[int], p: Penalties) -> np.ndarray:
    """The module docstring's definitions as a float32 loop, one character at a time."""
    out = logits.astype(np.float32).copy()
    window = context[-p.window :]
    r, presence, frequency = np.float32(p.repetition), np.float32(p.presence), np.float32(p.frequency)
    for c in range(len(out)):
        count = np.float32(window.count(c))
        x = out[c]
        if p.repetition != 1 and count > 0:
            x = x / r if x > 0 else x * r
        if p.presence != 0 or p.frequency != 0:
            x = x - frequency * count
            x = x - presence * np.float32(count > 0)
        out[c] = x
    n = p.no_repeat_ngram_size
    if n and len(context) >= n - 1:
        tail = context[len(context) - (n - 1) :] if n > 1 else []
        banned = {context[i + n - 1] for i in range(len(context) - n + 1) if context[i : i + n - 1] == tail}
        if len(banned) < len(out):  # every character banned: the ban is lifted
            out[sorted(banned)] = -np.inf
    return out


def run_process(
    logits: torch.Tensor, contexts: list[list[int]], settings: list[Penalties | None]
) -> torch.Tensor:
    """`process` on a copy of `logits` (n, V), each row with its context and penalties (None: none)."""
    histories = [
        History(p, c) if p is not None and p.active else None for p, c in zip(settings, contexts, strict=True)
    ]
    rows = torch.tensor([penalty_row(V, h) for h in histories])
    buffers = PenaltyBuffers.over(rows[:, :V], rows[:, V:])
    needs = PenaltyNeeds(
        *(any(getattr(PenaltyNeeds.of(p), f) for p in settings if p) for f in PenaltyNeeds._fields)
    )
    out = logits.clone()
    process(out, buffers, needs, histories)
    return out


SPECIAL = [0.0, -0.0, math.inf, -math.inf, 3.5, -2.25, 1e-30, -1e30, 7.0, 0.1, -0.1, 2.0]


def test_penalties_are_the_definitions_exactly_and_neutral_rows_are_untouched() -> None:
    rng = random.Random(0)
    torch.manual_seed(0)
    settings: list[Penalties | None] = [
        None,
        Penalties(repetition=1.7),
        Penalties(repetition=0.3, window=3),
        Penalties(presence=1.3),
        Penalties(presence=-0.0, frequency=-0.0, repetition=1.2),  # -0.0 settings keep -0.0 logits
        Penalties(frequency=-0.7, window=5),
        Penalties(repetition=1.9, presence=0.45, frequency=1.1),
        Penalties(no_repeat_ngram_size=1),
        Penalties(no_repeat_ngram_size=3, repetition=1.5),
        Penalties(no_repeat_ngram_size=2, presence=2.0, frequency=-2.0, window=1024),
        None,
        Penalties(no_repeat_ngram_size=1),  # every character seen: the ban is lifted
    ]
    contexts = [[rng.randrange(V) for _ in range(rng.randrange(1, 40))] for _ in settings]
    contexts[-1] = list(range(V)) * 2
    logits = torch.randn(len(settings), V) * 4
    logits[::2] = torch.tensor(SPECIAL)  # signed zeros and infinities in every other row
    out = run_process(logits, contexts, settings)
    for row, (p, context) in enumerate(zip(settings, contexts, strict=True)):
        expected = torch.from_numpy(reference(logits[row].numpy(), context, p or Penalties()))
        assert torch.equal(out[row].view(torch.int32), expected.view(torch.int32)), (row, p)
    for row in (0, 10, 11):  # no penalties, or a lifted ban: bitwise the input, -0.0 included
        assert torch.equal(out[row].view(torch.int32), logits[row].view(torch.int32))
    assert torch.isinf(out[7]).sum() == len(set(contexts[7]))  # n = 1 bans every character seen


def test_window_counts_and_ngrams_follow_the_pushes() -> None:
    # After random pushes, the counts in the buffers (updated by record, one op per step) are the
    # bincount of the last `window` characters, and the ban is the brute-force n-gram search.
    rng = random.Random(1)
    settings = [
        Penalties(repetition=1.3, window=w, no_repeat_ngram_size=n)
        for w, n in ((1, 0), (7, 2), (64, 4), (1024, 1))
    ]
    contexts = [[rng.randrange(V) for _ in range(rng.randrange(1, 30))] for _ in settings]
    histories: list[History | None] = [History(p, list(c)) for p, c in zip(settings, contexts, strict=True)]
    rows = torch.tensor([penalty_row(V, h) for h in histories])
    buffers = PenaltyBuffers.over(rows[:, :V], rows[:, V:])
    for _ in range(200):
        ids = [rng.randrange(V) if rng.random() < 0.7 else c[-3] for c in contexts]
        record(buffers, ids, histories)
        for row, (i, p, context, history) in enumerate(zip(ids, settings, contexts, histories, strict=True)):
            context.append(i)
            expected = np.bincount(context[-p.window :], minlength=V).astype(np.float32)
            assert buffers.counts[row].tolist() == expected.tolist()
            assert history is not None
            ban = np.isinf(reference(np.zeros(V, np.float32), context, p))
            assert sorted(history.banned(V)) == np.flatnonzero(ban).tolist()


def test_a_neutral_row_costs_nothing_and_needs_nothing() -> None:
    assert not Penalties().active and not PenaltyNeeds.of(Penalties()).any
    assert Penalties(presence=-0.0).active is False
    assert penalty_row(3, None) == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    p = Penalties(repetition=1.5, presence=-0.0)
    assert math.copysign(1, penalty_row(3, History(p, [0]))[4]) == 1  # -0.0 stored as +0.0


def distinct_8grams(text: str) -> int:
    return len({text[i : i + 8] for i in range(len(text) - 7)})


@pytest.fixture(scope="module")
def looping(tale_lm: tuple[CharLSTM, Vocabulary]) -> tuple[FusedCharLSTM, Vocabulary, str]:
    """The tiny trained model, and its greedy text, which is an exact short loop."""
    model, vocab = tale_lm
    fused = FusedCharLSTM(model)
    (text,) = decode(fused, vocab, [Stream("The king", 300, 0, temperature=0)], capacity=1)
    tail = text[-200:]
    period = next(p for p in range(1, 60) if tail[p:] == tail[:-p])  # StopIteration: no loop
    assert period < 60 and distinct_8grams(text) <= period + 8
    return fused, vocab, text


@pytest.mark.parametrize(
    "setting",
    [
        {"repetition_penalty": 1.3},
        {"presence_penalty": 1.0},
        {"frequency_penalty": 0.5},
        {"no_repeat_ngram_size": 4},
        {"no_repeat_ngram_size": 8},
    ],
)
def test_each_penalty_breaks_the_greedy_loop(looping, tale_lm, setting) -> None:
    fused, vocab, loop = looping
    stream = Stream("The king", 300, 0, temperature=0, **setting)
    (text,) = decode(fused, vocab, [stream], capacity=1)
    assert distinct_8grams(text) > 3 * distinct_8grams(loop)
    n = setting.get("no_repeat_ngram_size")
    if n:  # the ban's promise, exactly: no n-gram of seed text + text occurs twice
        whole = "The king" + text
        grams = [whole[i : i + n] for i in range(len(whole) - n + 1)]
        assert len(grams) == len(set(grams))
    model, _ = tale_lm
    assert generate(model, vocab, "The king", 300, temperature=0, random_seed=0, **setting).text == text


def test_the_window_bounds_what_the_penalty_sees(looping) -> None:
    # A repetition penalty over a 1-character window only stops a character following itself; the
    # default 64 breaks a loop the 1-window one cannot (and its text shows doubled letters nowhere).
    fused, vocab, _ = looping
    (short,) = decode(
        fused, vocab, [Stream("The king", 300, 0, temperature=0, repetition_penalty=2.0, penalty_window=1)], 1
    )
    (wide,) = decode(fused, vocab, [Stream("The king", 300, 0, temperature=0, repetition_penalty=2.0)], 1)
    assert short != wide
    assert distinct_8grams(wide) > distinct_8grams(short)


def test_the_counts_move_with_their_row(looping) -> None:
    # Streams leave from the middle of the batch: the last row moves into the freed one with its
    # counts (they are part of the row), so each stream's text is its text alone.
    fused, vocab, _ = looping
    streams = [
        Stream(
            "The king", 40 + 7 * i, i, temperature=0.5, frequency_penalty=0.3 * (i % 3), penalty_window=5 + i
        )
        for i in range(8)
    ]
    alone = [decode(fused, vocab, [s], 1)[0] for s in streams]
    batch = DecodeBatch(fused, vocab, 8)
    texts = {batch.add(s): "" for s in streams}
    while len(batch):
        for slot, i in batch.step().items():
            texts[slot] += vocab.chars[i]
    assert list(texts.values()) == alone


def test_logprobs_are_the_raw_distribution_of_the_rows_that_ask(looping) -> None:
    # The chosen character's log-probability and the alternatives come from log_softmax of the model's
    # logits, before the penalties: here a ban (n = 1) moves greedy off the argmax, and the report
    # still scores the chosen character under the raw distribution.
    fused, vocab, _ = looping
    batch = DecodeBatch(fused, vocab, capacity=4)
    asking = batch.add(Stream("The king", 30, 0, temperature=0, logprobs=3, no_repeat_ngram_size=1))
    plain = batch.add(Stream("The king", 30, 0, temperature=0))
    off_argmax = 0
    while asking in batch:
        raw = batch.next_logits(asking).log_softmax(0)
        ids = batch.step()
        entry = batch.last_logprobs[asking]
        assert set(batch.last_logprobs) == {asking}  # nothing for the row that did not ask
        assert entry.logprob == pytest.approx(float(raw[ids[asking]]), abs=1e-6)
        values, order = raw.sort(descending=True, stable=True)
        assert entry.top == [
            (i, pytest.approx(v, abs=1e-6))
            for i, v in zip(order[:3].tolist(), values[:3].tolist(), strict=True)
        ]
        off_argmax += ids[asking] != order[0]
        assert plain in ids
    assert off_argmax > 0
    batch.step()
    assert batch.last_logprobs == {}
