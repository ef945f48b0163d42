"""The decode engine: CharLSTM's numbers, `generate`'s texts, streams independent of their batch."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

import models.decode.slots as slots_module
from models.char_lstm import CharLSTM
from models.data import UnknownCharacters, Vocabulary
from models.decode.batch import DecodeBatch, decode
from models.decode.fused import FusedCharLSTM
from models.decode.logprobs import CharLogprobs
from models.decode.stream import Stream
from models.sample import Generation, generate
from tests.models.conftest import TALE as TEXT


@pytest.fixture(scope="module")
def lm(tale_lm: tuple[CharLSTM, Vocabulary]) -> tuple[CharLSTM, Vocabulary]:
    return tale_lm


@pytest.fixture(scope="module")
def fused(lm: tuple[CharLSTM, Vocabulary]) -> FusedCharLSTM:
    return FusedCharLSTM(lm[0])


# The per-stream penalties and logprobs a varied stream draws from, each neutral about half the time,
# so penalised, reporting and plain rows meet in one batch.
EXTRAS: dict[str, list[object]] = {
    "logprobs": [0, 0, 1, 5],
    "repetition_penalty": [1.0, 1.0, 1.4, 0.7],
    "presence_penalty": [0.0, 0.0, 0.8, -0.5],
    "frequency_penalty": [0.0, 0.0, 0.3, -0.2],
    "no_repeat_ngram_size": [0, 0, 0, 1, 3, 6],
    "penalty_window": [64, 1, 12, 500],
}


def reference(lm: tuple[CharLSTM, Vocabulary], s: Stream) -> Generation:
    """What the one-stream reference, `generate`, gives for the stream."""
    model, vocab = lm
    extras = {name: getattr(s, name) for name in EXTRAS}
    return generate(
        model, vocab, s.seed_text, s.length, s.temperature, s.top_k, s.top_p, s.random_seed, **extras
    )


def expected_text(lm: tuple[CharLSTM, Vocabulary], s: Stream) -> str:
    return reference(lm, s).text


def varied_streams(count: int, rng: random.Random) -> list[Stream]:
    """Streams that differ in everything a request can set, seed-text lengths from 0 to ~70."""
    return [
        Stream(
            seed_text=TEXT[rng.randrange(100) :][: rng.choice([0, 1, 3, 12, 70])],
            length=rng.randrange(1, 90),
            random_seed=rng.randrange(2**64),
            temperature=rng.choice([0, 0.3, 0.8, 1.0, 1.6]),
            top_k=rng.choice([None, None, 1, 4, 40]),
            top_p=rng.choice([None, None, 0.3, 0.9, 1.0]),
            **{name: rng.choice(values) for name, values in EXTRAS.items()},  # type: ignore[arg-type]
        )
        for _ in range(count)
    ]


Scores = list[CharLogprobs]


def decode_scored(
    fused: FusedCharLSTM, vocab: Vocabulary, streams: list[Stream], capacity: int
) -> list[tuple[str, Scores]]:
    """`decode`, with every stream's `last_logprobs` entries beside its text."""
    batch = DecodeBatch(fused, vocab, capacity)
    out: list[tuple[list[str], Scores]] = [([], []) for _ in streams]
    owner: dict[int, int] = {}
    pending = iter(range(len(streams)))
    index = next(pending, None)
    while index is not None or len(batch):
        while index is not None and not batch.is_full:
            owner[batch.add(streams[index])] = index
            index = next(pending, None)
        for slot, i in batch.step().items():
            out[owner[slot]][0].append(vocab.chars[i])
        for slot, entry in batch.last_logprobs.items():
            out[owner[slot]][1].append(entry)
    return [("".join(text), scores) for text, scores in out]


def assert_same_scores(got: Scores, expected: Scores, k: int) -> None:
    """The same characters' log-probabilities and alternatives, up to float rounding of the logits."""
    assert len(got) == len(expected) if k else got == []
    for a, b in zip(got, expected, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert len(a.top) == len(b.top) == k
        assert [lp for _, lp in a.top] == pytest.approx([lp for _, lp in b.top], abs=1e-4)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_logits_match_char_lstm(num_layers: int) -> None:
    torch.manual_seed(num_layers)
    vocab = Vocabulary("abcdefghij ")
    model = CharLSTM(len(vocab), embedding_size=8, hidden_size=16, num_layers=num_layers).eval()
    batch = DecodeBatch(FusedCharLSTM(model), vocab, capacity=4)
    # Three streams in rows 0..2, so each row's layer inputs come from its own slice of the buffers.
    streams = [Stream("abc", 25, random_seed=i) for i in range(3)]
    slots = [batch.add(s) for s in streams]
    logits: dict[int, list[torch.Tensor]] = {slot: [] for slot in slots}
    ids: dict[int, list[int]] = {slot: [] for slot in slots}
    while len(batch):
        for slot in slots:
            if slot in batch:
                logits[slot].append(batch.next_logits(slot))
        for slot, i in batch.step().items():
            ids[slot].append(i)
    for slot in slots:
        # Teacher-forced through the module: position t's logits predict generated character t.
        inputs = torch.cat([vocab.encode("abc"), torch.tensor(ids[slot][:-1])])
        with torch.no_grad():
            expected, _ = model(inputs[None])
        assert len(ids[slot]) == 25
        torch.testing.assert_close(torch.stack(logits[slot]), expected[0, 2:], rtol=0, atol=1e-5)


def test_same_random_seed_same_text_as_generate(lm, fused) -> None:
    model, vocab = lm
    rng = random.Random(0)
    grid = itertools.product(["", "T", "the queen", TEXT[:90]], [0, 0.5, 1.0, 1.7], [None, 1, 5], [None, 0.6])
    streams = [
        Stream(seed, rng.randrange(1, 60), rng.randrange(2**32), temperature=t, top_k=k, top_p=p)
        for seed, t, k, p in grid
    ]
    streams += [
        Stream("", 0, 3),
        Stream("king", 0, 3, temperature=0.5),
        Stream("", 1, 4),
        Stream("", 40, 2**64 - 1, top_p=1e-9),
        Stream("king", 40, 5, temperature=2.5, top_k=200, top_p=0.999),
    ]
    for s in streams:  # each alone in a batch of its own
        assert decode(fused, vocab, [s], capacity=1) == [expected_text(lm, s)], s


def test_a_stream_is_the_same_alone_and_beside_31_others(lm, fused) -> None:
    # Every setting, penalties and logprobs included, mixed in one batch of 32, 48 streams joining as
    # others finish: each stream's text is its text alone and generate's, its log-probabilities too.
    _, vocab = lm
    streams = varied_streams(48, random.Random(1))
    assert {s.no_repeat_ngram_size for s in streams} == {0, 1, 3, 6} and {s.logprobs for s in streams} == {
        0,
        1,
        5,
    }
    alone = [decode_scored(fused, vocab, [s], capacity=1)[0] for s in streams]
    together = decode_scored(fused, vocab, streams, capacity=32)
    assert [text for text, _ in together] == [text for text, _ in alone]
    for s, (text, scores), (_, scores_together) in zip(streams, alone, together, strict=True):
        assert_same_scores(scores_together, scores, s.logprobs)
        expected = reference(lm, s)
        assert text == expected.text, s
        if s.logprobs:
            assert expected.logprobs is not None and expected.top_logprobs is not None
            assert [e.logprob for e in scores] == pytest.approx(expected.logprobs, abs=1e-4)
            assert [[lp for _, lp in e.top] for e in scores] == [
                pytest.approx([lp for _, lp in top], abs=1e-4) for top in expected.top_logprobs
            ]


def test_streams_join_leave_and_reuse_slots_midway(lm, fused) -> None:
    _, vocab = lm
    streams = varied_streams(70, random.Random(2))
    alone = decode_scored(fused, vocab, streams, capacity=1)
    batch = DecodeBatch(fused, vocab, capacity=32)
    waiting = list(enumerate(streams))
    owner: dict[int, int] = {}
    texts = [""] * len(streams)
    scores: list[Scores] = [[] for _ in streams]
    cancelled: set[int] = set()
    slots_used: list[int] = []
    step = 0
    while waiting or len(batch):
        # Join whenever a slot is free: new streams meet others that are halfway through.
        while waiting and not batch.is_full:
            index, stream = waiting.pop(0)
            slot = batch.add(stream)
            owner[slot] = index
            slots_used.append(slot)
        if step in (7, 30):  # two clients go away mid-stream
            for slot in [slot for slot in sorted(owner) if slot in batch][:2]:
                batch.remove(slot)
                cancelled.add(owner.pop(slot))
        for slot, i in batch.step().items():
            texts[owner[slot]] += vocab.chars[i]
        for slot, entry in batch.last_logprobs.items():
            scores[owner[slot]].append(entry)
        step += 1
    assert len(cancelled) == 4
    assert len(slots_used) == len(streams) and set(slots_used) == set(range(32))
    for index, (text, (expected, expected_scores)) in enumerate(zip(texts, alone, strict=True)):
        if index in cancelled:
            assert expected.startswith(text) and len(text) < len(expected)
            expected_scores = expected_scores[: len(text)] if expected_scores else []
        else:
            assert text == expected
        assert_same_scores(scores[index], expected_scores, streams[index].logprobs)


def test_greedy_is_the_argmax_of_each_step(lm, fused) -> None:
    model, vocab = lm
    (text,) = decode(fused, vocab, [Stream("The king", 80, 0, temperature=0)], capacity=4)
    ids = vocab.encode("The king" + text)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    assert logits[0, 7:].argmax(-1).tolist() == ids[8:].tolist()
    # top_k=1 and a tiny top_p are greedy too, whatever the random seed.
    assert decode(fused, vocab, [Stream("The king", 80, 9, top_k=1)], capacity=1) == [text]
    assert decode(fused, vocab, [Stream("The king", 80, 9, temperature=3, top_p=1e-9)], capacity=1) == [text]


@pytest.mark.parametrize(
    ("arguments", "error", "name"),
    [
        (dict(length=-1), ValueError, "length"),
        (dict(length=2.0), ValueError, "length"),
        (dict(temperature=-0.5), ValueError, "temperature"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(temperature=1e-40), ValueError, "temperature"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(top_p=0.0), ValueError, "top_p"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(random_seed=-1), ValueError, "random_seed"),
        (dict(random_seed=2**64), ValueError, "random_seed"),
        (dict(seed_text=b"The"), TypeError, "seed_text"),
        (dict(logprobs=6), ValueError, "logprobs"),
        (dict(logprobs=-1), ValueError, "logprobs"),
        (dict(logprobs=True), ValueError, "logprobs"),
        (dict(repetition_penalty=0.0), ValueError, "repetition_penalty"),
        (dict(repetition_penalty=2.01), ValueError, "repetition_penalty"),
        (dict(repetition_penalty=float("nan")), ValueError, "repetition_penalty"),
        (dict(presence_penalty=-2.5), ValueError, "presence_penalty"),
        (dict(presence_penalty=float("inf")), ValueError, "presence_penalty"),
        (dict(frequency_penalty=2.5), ValueError, "frequency_penalty"),
        (dict(no_repeat_ngram_size=-1), ValueError, "no_repeat_ngram_size"),
        (dict(no_repeat_ngram_size=65), ValueError, "no_repeat_ngram_size"),
        (dict(no_repeat_ngram_size=2.0), ValueError, "no_repeat_ngram_size"),
        (dict(penalty_window=0), ValueError, "penalty_window"),
        (dict(penalty_window=1025), ValueError, "penalty_window"),
    ],
)
def test_invalid_stream_parameters_are_named(arguments, error, name) -> None:
    values = {"seed_text": "The", "length": 10, "random_seed": 0, **arguments}
    with pytest.raises(error, match=name):
        Stream(**values)


def test_a_batch_refuses_what_it_cannot_serve(lm, fused) -> None:
    model, vocab = lm
    with pytest.raises(ValueError, match="capacity"):
        DecodeBatch(fused, vocab, capacity=0)
    with pytest.raises(ValueError, match="vocabulary"):
        DecodeBatch(fused, Vocabulary("ab"), capacity=2)
    with pytest.raises(TypeError, match="CharLSTM"):
        FusedCharLSTM(torch.nn.LSTM(4, 4))  # type: ignore[arg-type]
    batch = DecodeBatch(fused, vocab, capacity=1)
    with pytest.raises(UnknownCharacters):
        batch.add(Stream("€", 5, 0))
    with pytest.raises(ValueError, match="length"):
        batch.add(Stream("The", 0, 0))
    slot = batch.add(Stream("The", 5, 0))
    with pytest.raises(RuntimeError, match="full"):
        batch.add(Stream("The", 5, 0))
    batch.remove(slot)
    with pytest.raises(KeyError):
        batch.remove(slot)
    assert len(batch) == 0 and batch.step() == {}


def test_a_seed_text_primed_from_the_cache_gives_the_same_text(lm, fused) -> None:
    _, vocab = lm
    # The same seed texts (and, for "", the same start characters) over and over: most joins hit.
    streams = [Stream(seed, 30, random_seed=i) for i in range(24) for seed in ("", "the queen", "T")]
    fresh = [decode(fused, vocab, [s], capacity=1)[0] for s in streams]
    batch = DecodeBatch(fused, vocab, capacity=4)
    texts = []
    for s in streams:
        slot = batch.add(s)
        text = []
        while slot in batch:
            text.append(vocab.chars[batch.step()[slot]])
        texts.append("".join(text))
    assert texts == fresh
    assert 2 < len(batch.prefix_cache) < len(streams)  # hits happened: fewer entries than joins


def test_the_primed_cache_keeps_the_latest_seed_texts(lm, fused, monkeypatch) -> None:
    _, vocab = lm
    monkeypatch.setattr(slots_module, "PRIMED_CACHE_SIZE", 3)
    batch = DecodeBatch(fused, vocab, capacity=1)
    for seed in ("a", "b", "c", "a", "d"):  # "a" used again, so "b" is the least recent
        batch.remove(batch.add(Stream(seed, 1, random_seed=0)))
    assert list(batch.prefix_cache) == ["c", "a", "d"]
