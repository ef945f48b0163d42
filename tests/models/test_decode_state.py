"""Start states and clamps in the decode batch (models/decode/state.py): a stream that continues a
stored state gives the text of the same stream primed with the text behind that state, on both
steps; clamps are applied identically after either step (bitwise), and `feed` agrees with them."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

import models.native
from models.char_lstm import CharLSTM
from models.data import Vocabulary
from models.decode.batch import DecodeBatch
from models.decode.fused import FusedCharLSTM
from models.decode.limits import MAX_CLAMPS
from models.decode.state import Clamp, StartState, after, with_clamp
from models.decode.stream import Stream

VOCAB = Vocabulary("abcdefghijklmnopqrstuvwxyz .,")
SHAPES = [(1, 16), (2, 32), (3, 24), (2, 128)]
PATHS = [
    False,
    pytest.param(True, marks=pytest.mark.skipif(models.native.load() is None, reason="not built")),
]


def fused(layers: int, hidden: int, seed: int = 0) -> FusedCharLSTM:
    torch.manual_seed(seed)
    return FusedCharLSTM(CharLSTM(len(VOCAB), 8, hidden, layers, 0.0).eval())


def run(
    batch: DecodeBatch, joins: list[tuple[Stream, StartState | None]]
) -> tuple[list[str], list[torch.Tensor]]:
    """Join every stream at once (capacity permitting, the rest as slots free up), step to the end:
    each stream's text and its state when it left."""
    texts: list[list[str]] = [[] for _ in joins]
    states: list[torch.Tensor] = [torch.empty(0)] * len(joins)
    owner: dict[int, int] = {}
    waiting = list(enumerate(joins))
    while waiting or len(batch):
        while waiting and not batch.is_full:
            i, (stream, start) = waiting.pop(0)
            owner[batch.add(stream, start, keep_state=True)] = i
        ids = batch.step()
        for slot, next_id in ids.items():
            texts[owner[slot]].append(VOCAB.chars[next_id])
        for slot, state in batch.last_states.items():
            states[owner[slot]] = state
    return ["".join(t) for t in texts], states


@pytest.mark.parametrize(("layers", "hidden"), SHAPES)
def test_feeding_in_pieces_is_bitwise_priming_the_whole(layers: int, hidden: int) -> None:
    weights = fused(layers, hidden)
    text = "it was the best of times, it was the worst of times"
    logits, h, c = weights.prime(VOCAB.encode(text))
    rng = random.Random(layers)
    cuts = sorted({0, len(text), 7, 8, 9, *rng.sample(range(1, len(text)), 12)})  # 1-character pieces too
    state = StartState.zero(layers, hidden)
    for start, stop in zip(cuts, cuts[1:], strict=False):
        _, state = weights.feed(VOCAB.encode(text[start:stop]), state)
    assert torch.equal(state.h, h) and torch.equal(state.c, c)
    assert torch.equal(weights.readout(state.h), logits)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize(("layers", "hidden"), SHAPES)
def test_a_start_state_gives_the_primed_text_alone_and_among_others(
    layers: int, hidden: int, native: bool
) -> None:
    weights = fused(layers, hidden)
    prompt = "the quick brown fox"
    _, h, c = weights.prime(VOCAB.encode(prompt))
    others = [
        (Stream("abc " * k, 20 + 3 * k, 50 + k, [0.0, 0.7, 1.0][k % 3], top_k=[None, 4][k % 2]), None)
        for k in range(6)
    ]
    settings = {"length": 40, "random_seed": 11, "temperature": 0.9, "top_p": 0.95}
    primed, primed_states = run(
        DecodeBatch(weights, VOCAB, 1, native=native), [(Stream(prompt, **settings), None)]
    )
    alone, alone_states = run(
        DecodeBatch(weights, VOCAB, 1, native=native), [(Stream("", **settings), StartState(h, c))]
    )
    # Its batch row made beforehand (as a session request makes it, off the engine thread).
    made = replace(StartState(h, c), row=weights.start_row(StartState(h, c)))
    crowded, crowded_states = run(
        DecodeBatch(weights, VOCAB, 4, native=native),
        [
            *others[:3],
            (Stream("", **settings), StartState(h, c)),
            *others[3:],
            (Stream("", **settings), made),
        ],
    )
    assert alone[0] == primed[0] == crowded[3] == crowded[-1]
    assert torch.equal(alone_states[0], primed_states[0])
    assert len(alone[0]) == 40 and alone_states[0].shape == (2 * layers * hidden,)


@pytest.mark.skipif(models.native.load() is None, reason="the native step is not built")
@pytest.mark.parametrize(("layers", "hidden"), SHAPES)
def test_clamps_are_bitwise_the_same_on_both_steps(layers: int, hidden: int) -> None:
    weights = fused(layers, hidden, seed=3)
    rng = random.Random(layers * 100 + hidden)
    joins: list[tuple[Stream, StartState | None]] = []
    for k in range(12):
        stream_seed = rng.randrange(2**32)
        prompt = "".join(rng.choice(VOCAB.chars) for _ in range(rng.randint(1, 12)))
        if k % 3 == 0:  # plain rows between the clamped ones
            joins.append((Stream(prompt, rng.randint(5, 60), stream_seed, rng.choice([0.0, 1.0])), None))
            continue
        _, state = weights.feed(VOCAB.encode(prompt), StartState.zero(layers, hidden))
        for _ in range(rng.randint(1, 3)):
            clamp = Clamp(
                rng.randrange(layers), rng.randrange(hidden), rng.uniform(-5, 5), rng.randint(1, 40)
            )
            state = state.clamped(clamp)
        joins.append(
            (
                Stream(
                    "",
                    rng.randint(5, 60),
                    stream_seed,
                    rng.choice([0.0, 0.8, 1.3]),
                    top_k=rng.choice([None, 5]),
                ),
                state,
            )
        )
    native = run(DecodeBatch(weights, VOCAB, 5, native=True), joins)
    python = run(DecodeBatch(weights, VOCAB, 5, native=False), joins)
    assert native[0] == python[0]
    assert all(torch.equal(a, b) for a, b in zip(native[1], python[1], strict=True))


@pytest.mark.parametrize("native", PATHS)
def test_a_clamp_holds_its_unit_for_its_steps_then_lets_go(native: bool) -> None:
    layers, hidden = 2, 16
    weights = fused(layers, hidden, seed=5)
    _, state = weights.feed(VOCAB.encode("hello"), StartState.zero(layers, hidden))
    clamp = Clamp(layer=1, unit=3, value=7.5, steps=4)
    state = state.clamped(clamp)
    assert state.c[1, 3] == 7.5  # set at once: the next character's step reads it
    batch = DecodeBatch(weights, VOCAB, 2, native=native)
    slot = batch.add(Stream("", 8, 1, 1.0), state)
    c_unit = layers * hidden + 1 * hidden + 3  # c of layer 1, unit 3 in h | c
    held = []
    for _ in range(7):
        batch.step()
        held.append(float(batch.state_of(slot)[c_unit]))
    assert held[:4] == [7.5] * 4
    assert all(v != 7.5 for v in held[4:])  # free again: f * c + i * g moves it


def test_feeding_a_generated_text_with_its_clamps_reaches_the_generated_state() -> None:
    # The batch (step by step) and feed (layer by layer) apply a clamp at the same point of the
    # arithmetic: feeding the text a clamped stream generated reaches its state (to float rounding:
    # the two paths multiply in different shapes).
    layers, hidden = 2, 24
    weights = fused(layers, hidden, seed=9)
    _, state = weights.feed(VOCAB.encode("once upon"), StartState.zero(layers, hidden))
    state = state.clamped(Clamp(0, 5, 3.0, 10)).clamped(Clamp(1, 2, -2.0, 30))
    (text,), (final,) = run(DecodeBatch(weights, VOCAB, 1, native=False), [(Stream("", 20, 4, 1.0), state)])
    _, fed = weights.feed(VOCAB.encode(text), state)
    assert torch.allclose(fed.flat, final, atol=1e-5)
    assert fed.clamps == (Clamp(1, 2, -2.0, 10),)


def test_clamp_bounds_and_bookkeeping() -> None:
    with pytest.raises(ValueError, match="layer"):
        Clamp(2, 0, 1.0, 1).check(2, 16)
    with pytest.raises(ValueError, match="unit"):
        Clamp(0, 16, 1.0, 1).check(2, 16)
    with pytest.raises(ValueError, match="value"):
        Clamp(0, 0, float("nan"), 1).check(2, 16)
    with pytest.raises(ValueError, match="steps"):
        Clamp(0, 0, 1.0, 0).check(2, 16)
    clamps = with_clamp((Clamp(0, 1, 1.0, 5),), Clamp(0, 1, 2.0, 9))  # the same unit: replaced
    assert clamps == (Clamp(0, 1, 2.0, 9),)
    assert after(clamps + (Clamp(1, 0, 0.5, 3),), 4) == (Clamp(0, 1, 2.0, 5),)
    full = tuple(Clamp(0, u, 1.0, 1) for u in range(MAX_CLAMPS))
    with pytest.raises(ValueError, match="at most"):
        with_clamp(full, Clamp(1, 0, 1.0, 1))


def test_a_start_state_refuses_a_seed_text_and_a_wrong_shape() -> None:
    weights = fused(2, 16)
    batch = DecodeBatch(weights, VOCAB, 2, native=False)
    with pytest.raises(ValueError, match="no seed text"):
        batch.add(Stream("abc", 5, 1), StartState.zero(2, 16))
    with pytest.raises(ValueError, match="start state h"):
        batch.add(Stream("", 5, 1), StartState.zero(1, 16))
    with pytest.raises(ValueError, match="start row"):
        batch.add(Stream("", 5, 1), replace(StartState.zero(2, 16), row=torch.zeros(3)))
    assert len(batch) == 0  # a refused join takes no slot
