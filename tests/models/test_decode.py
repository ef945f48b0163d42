"""The decode engine: CharLSTM's numbers, `generate`'s texts, streams independent of their batch."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

import models.decode.slots as slots_module
from models.char_lstm import CharLSTM
from models.checkpoint import load_model, load_vocabulary
from models.data import UnknownCharacters, Vocabulary, make_data
from models.decode.batch import DecodeBatch, decode
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream
from models.sample import generate
from models.train import train
from tests.models.conftest import text_config

# Short enough to live here (tests read nothing outside the repository), repetitive enough that a
# few dozen steps give the model preferences, so distributions are not flat.
TEXT = (
    "Once upon a time there lived a king and a queen who had no children. The king said to the queen: "
    "we shall have a child, and the queen said to the king: that would be a fine thing. Then one day "
    "a frog crept out of the water and said to the queen: your wish shall be fulfilled. "
) * 6


@pytest.fixture(scope="module")
def lm() -> tuple[CharLSTM, Vocabulary]:
    """A two-layer CharLSTM trained for a few dozen steps on TEXT."""
    config = text_config(num_layers=2, train_steps=40, log_every=20, eval_every=40)
    result = train(config, make_data(config, TEXT))
    model, vocab = load_model(result.final_checkpoint), load_vocabulary(result.final_checkpoint)
    assert isinstance(model, CharLSTM) and vocab is not None
    return model, vocab


@pytest.fixture(scope="module")
def fused(lm: tuple[CharLSTM, Vocabulary]) -> FusedCharLSTM:
    return FusedCharLSTM(lm[0])


def expected_text(lm: tuple[CharLSTM, Vocabulary], s: Stream) -> str:
    model, vocab = lm
    return generate(model, vocab, s.seed_text, s.length, s.temperature, s.top_k, s.top_p, s.random_seed).text


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
        )
        for _ in range(count)
    ]


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
    _, vocab = lm
    streams = varied_streams(48, random.Random(1))
    alone = [decode(fused, vocab, [s], capacity=1)[0] for s in streams]
    assert decode(fused, vocab, streams, capacity=32) == alone
    assert alone == [expected_text(lm, s) for s in streams]


def test_streams_join_leave_and_reuse_slots_midway(lm, fused) -> None:
    _, vocab = lm
    streams = varied_streams(70, random.Random(2))
    alone = [decode(fused, vocab, [s], capacity=1)[0] for s in streams]
    batch = DecodeBatch(fused, vocab, capacity=32)
    waiting = list(enumerate(streams))
    owner: dict[int, int] = {}
    texts = [""] * len(streams)
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
        step += 1
    assert len(cancelled) == 4
    assert len(slots_used) == len(streams) and set(slots_used) == set(range(32))
    for index, (text, expected) in enumerate(zip(texts, alone, strict=True)):
        if index in cancelled:
            assert expected.startswith(text) and len(text) < len(expected)
        else:
            assert text == expected


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
