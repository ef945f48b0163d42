"""The native decode step (models/native) against DecodeBatch's PyTorch step: the same bits.

Two batches over the same weights, one stepping natively and one in PyTorch, get the same joins and
removals; after every step their ids and their whole state rows (h, c, next logits, sampling settings,
uniforms) must be bitwise equal. The models are tiny and random: equality, not quality, is the point.
"""

from __future__ import annotations

import dataclasses
import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import models.native
from models.char_lstm import CharLSTM
from models.data import Vocabulary
from models.decode.batch import DecodeBatch, decode
from models.decode.buffers import UNIFORM_WINDOW, StepBuffers
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream

VOCAB = Vocabulary("abcdefghijklmnopqrstuvwxyz .,")

# The sampling settings a scenario draws from: each exercises a different set of the step's branches
# (all greedy is one argmax; "plain" skips scaling, top-k and top-p; the mixes switch branches on and
# off as the streams that need them join and leave).
SCENARIOS: dict[str, dict[str, list[object]]] = {
    "greedy": {"temperature": [0.0], "top_k": [None], "top_p": [None]},
    "plain": {"temperature": [1.0], "top_k": [None], "top_p": [None]},
    "scaled": {"temperature": [0.4, 1.0, 1.9], "top_k": [None], "top_p": [None]},
    "top_k": {"temperature": [1.0, 0.7], "top_k": [None, 1, 3, 40], "top_p": [None]},
    "top_p": {"temperature": [1.0, 1.3], "top_k": [None], "top_p": [None, 0.3, 0.9, 1.0]},
    "everything": {"temperature": [0.0, 0.5, 1.0, 2.5], "top_k": [None, 2, 7], "top_p": [None, 0.5, 0.95]},
    # The penalties and logprobs, each beside rows without it (they run before either step, in shared
    # Python: these check that both steps read the same processed logits and report the same numbers).
    "penalties": {
        "temperature": [0.0, 1.0, 0.7],
        "top_k": [None, 5],
        "top_p": [None, 0.9],
        "repetition_penalty": [1.0, 1.5, 0.6],
        "presence_penalty": [0.0, 1.2, -0.7],
        "frequency_penalty": [0.0, 0.4, -0.3],
        "penalty_window": [64, 1, 9, 1024],
    },
    "ngram_and_logprobs": {
        "temperature": [0.0, 1.0, 1.6],
        "top_k": [None, 3],
        "top_p": [None],
        "no_repeat_ngram_size": [0, 1, 2, 5],
        "logprobs": [0, 1, 5],
    },
    "all_new": {
        "temperature": [0.0, 0.5, 1.0],
        "top_k": [None, 2],
        "top_p": [None, 0.8],
        "repetition_penalty": [1.0, 1.3],
        "presence_penalty": [0.0, 0.5],
        "frequency_penalty": [0.0, -0.4],
        "no_repeat_ngram_size": [0, 0, 3],
        "penalty_window": [64, 5],
        "logprobs": [0, 0, 2, 5],
    },
}
# The Stream fields a scenario may leave out (the defaults are neutral).
EXTRA_FIELDS = (
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "no_repeat_ngram_size",
    "penalty_window",
    "logprobs",
)


def random_weights(num_layers: int, hidden_size: int, seed: int) -> FusedCharLSTM:
    """A CharLSTM with wide random weights: peaked next-character distributions, so top-k and top-p
    cut real mass and greedy rows rarely meet ties (nn.LSTM's own init gives nearly flat ones)."""
    torch.manual_seed(seed)
    model = CharLSTM(len(VOCAB), embedding_size=8, hidden_size=hidden_size, num_layers=num_layers).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.5 / hidden_size**0.5)
        model.head.weight.mul_(4)
    return FusedCharLSTM(model)


def random_stream(rng: random.Random, choices: dict[str, list[object]]) -> Stream:
    seed_text = "".join(rng.choice(VOCAB.chars) for _ in range(rng.choice([0, 1, 5, 30])))
    return Stream(
        seed_text,
        length=rng.choice([1, 2, rng.randrange(3, 60), rng.randrange(100, 3 * UNIFORM_WINDOW)]),
        random_seed=rng.randrange(2**64),
        temperature=rng.choice(choices["temperature"]),  # type: ignore[arg-type]
        top_k=rng.choice(choices["top_k"]),  # type: ignore[arg-type]
        top_p=rng.choice(choices["top_p"]),  # type: ignore[arg-type]
        **{name: rng.choice(choices[name]) for name in EXTRA_FIELDS if name in choices},  # type: ignore[arg-type]
    )


def bits(t: torch.Tensor) -> torch.Tensor:
    """The float32 values as their bit patterns: -0.0 differs from 0.0, NaN equals the same NaN."""
    return t.view(torch.int32)


def drive(weights: FusedCharLSTM, scenario: str, seed: str, steps: int = 3 * UNIFORM_WINDOW) -> int:
    """Step a native and a PyTorch batch through the same random joins and removals, comparing both
    after every step; the number of characters compared."""
    rng = random.Random(seed)
    capacity = 6
    native = DecodeBatch(weights, VOCAB, capacity, native=True)
    python = DecodeBatch(weights, VOCAB, capacity, native=False)
    assert native.native and not python.native
    compared = 0
    for step in range(steps):
        # Streams join at random steps (so they meet others midway), sometimes several at once...
        while not native.is_full and rng.random() < (0.6 if len(native) == 0 else 0.08):
            stream = random_stream(rng, SCENARIOS[scenario])
            assert native.add(stream) == python.add(stream)
        # ...and some leave before their end (a client went away).
        if len(native) and rng.random() < 0.03:
            slot = rng.choice(sorted(s for s in range(capacity) if s in native))
            native.remove(slot)
            python.remove(slot)
        n = len(native)
        ids = native.step()
        assert ids == python.step(), f"step {step}"
        # The same reports, bit for bit (floats compared with ==: the same computation on the same logits).
        assert native.last_logprobs == python.last_logprobs, f"step {step}"
        compared += len(ids)
        assert len(native) == len(python)
        same_rows = torch.equal(bits(native.buffers.rows[:n]), bits(python.buffers.rows[:n]))
        assert same_rows, f"state rows differ after step {step}"
    return compared


@pytest.mark.parametrize(("num_layers", "hidden_size"), [(1, 8), (2, 32), (3, 16)])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_native_step_is_bitwise_the_pytorch_step(num_layers: int, hidden_size: int, scenario: str) -> None:
    weights = random_weights(num_layers, hidden_size, seed=num_layers * 100 + hidden_size)
    compared = drive(weights, scenario, seed=f"{num_layers} {hidden_size} {scenario}")
    assert compared > 3 * UNIFORM_WINDOW  # streams were active for most of the steps


def test_the_last_nonzero_clamp_is_the_same() -> None:
    # The sampler clamps the drawn index to the last non-zero probability, for when uniform * total rounds
    # up to the total: too rare to meet with random uniforms, so these rows get uniforms at the very
    # top (1.0 itself and the largest float below it) written straight into their uniform window.
    weights = random_weights(2, 16, seed=3)
    native = DecodeBatch(weights, VOCAB, 4, native=True)
    python = DecodeBatch(weights, VOCAB, 4, native=False)
    streams = [
        Stream("ab", 100, 1, top_k=3),
        Stream("", 100, 2, temperature=0.6, top_p=0.5),
        Stream("xyz", 100, 3, temperature=1.4, top_k=6, top_p=0.9),
        Stream("q", 100, 4),
    ]
    for stream in streams:
        native.add(stream)
        python.add(stream)
    top = torch.tensor([1.0, torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item()]).repeat(
        UNIFORM_WINDOW // 2
    )
    for batch in (native, python):
        batch.buffers.rows[:, batch.buffers.layout.uniforms] = top
    for step in range(100):
        ids = native.step()
        assert ids == python.step(), f"step {step}"
        assert torch.equal(bits(native.buffers.rows), bits(python.buffers.rows)), (
            f"state rows differ after step {step}"
        )


def test_ties_and_signed_zeros_sort_as_torch_sorts_them() -> None:
    # The native sort must order equal logits (and -0.0 beside 0.0) by index, as the stable sort does:
    # every row gets the same logits, full of ties, and its own uniform spread over [0, 1), so the
    # chosen ids walk the whole sorted order and a single misplaced tie changes some row's id.
    weights = random_weights(1, 8, seed=5)
    V, rows = len(VOCAB), 64
    pattern = torch.tensor([2.0, 5.0, 2.0, -0.0, 0.0, 5.0, 2.0, -1.5, 0.0, -1.5, -0.0, 5.0])
    logits = pattern.repeat(V // len(pattern) + 1)[:V]
    native = DecodeBatch(weights, VOCAB, rows, native=True)
    python = DecodeBatch(weights, VOCAB, rows, native=False)
    for batch in (native, python):
        for i in range(rows):
            batch.add(Stream("a", 5, i))
        batch.buffers.rows[:, batch.buffers.layout.logits] = logits
        batch.buffers.rows[:, batch.buffers.layout.uniforms.start] = (torch.arange(rows) + 0.5) / rows
    ids = native.step()
    assert ids == python.step()
    assert len(set(ids.values())) > len(set(pattern.tolist()))  # ties were told apart, not merged


@pytest.mark.parametrize("native", [True, False])
def test_a_row_without_a_distribution_fails_the_step_on_both_paths(native: bool) -> None:
    # NaN logits (only a broken model has them: too-cold temperatures are refused) leave nothing to
    # sample from; neither step may quietly pick a character.
    weights = random_weights(1, 8, seed=6)
    batch = DecodeBatch(weights, VOCAB, 2, native=native)
    batch.add(Stream("a", 5, 1))
    batch.add(Stream("b", 5, 2))
    batch.buffers.rows[1, batch.buffers.layout.logits] = math.nan
    with pytest.raises(RuntimeError):
        batch.step()


@pytest.mark.parametrize("scenario", ["everything", "all_new"])
def test_decode_gives_the_same_texts_natively(scenario: str) -> None:
    weights = random_weights(2, 16, seed=7)
    rng = random.Random(7)
    streams = [random_stream(rng, SCENARIOS[scenario]) for _ in range(40)]
    texts = decode(weights, VOCAB, streams, capacity=8, native=False)
    assert decode(weights, VOCAB, streams, capacity=8, native=True) == texts
    assert decode(weights, VOCAB, streams, capacity=8) == texts  # None: native where built


def test_this_environment_has_the_native_step() -> None:
    # ./run builds it before the tests: a build that broke must fail here, not fall back silently.
    assert models.native.load() is not None, "not built: run `python -m models.native` (./run does)"
    assert DecodeBatch(random_weights(1, 8, seed=0), VOCAB, 2).native
    assert models.native.build() is False  # current: building again is a no-op


def test_without_a_build_load_is_none_and_decode_batch_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert models.native.load(tmp_path) is None
    monkeypatch.setattr(models.native, "ROOT", tmp_path)  # where DecodeBatch's load() looks
    weights = random_weights(2, 8, seed=1)
    assert models.native.load() is None
    assert not DecodeBatch(weights, VOCAB, 2).native
    with pytest.raises(RuntimeError, match="python -m models.native"):
        DecodeBatch(weights, VOCAB, 2, native=True)
    stream = Stream("abc", 20, random_seed=3, temperature=0.8, top_k=5)
    expected = decode(weights, VOCAB, [stream], capacity=2, native=False)
    assert decode(weights, VOCAB, [stream], capacity=2) == expected


def test_off_the_cpu_decode_batch_keeps_the_pytorch_step() -> None:
    # The meta device stands in for CUDA: any non-CPU device takes the PyTorch step.
    model = CharLSTM(len(VOCAB), embedding_size=4, hidden_size=8, num_layers=2).to("meta")
    weights = FusedCharLSTM(model)
    assert not DecodeBatch(weights, VOCAB, 2).native
    with pytest.raises(ValueError, match="CPU only"):
        DecodeBatch(weights, VOCAB, 2, native=True)


def test_the_build_name_changes_with_source_torch_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stale build is never loaded because any of these gives it another name.
    name = models.native.module_name()
    assert name.startswith("decode_step_") and name.isidentifier()
    monkeypatch.setattr(models.native, "CFLAGS", ("-O2",))
    assert models.native.module_name() != name
    monkeypatch.undo()
    monkeypatch.setattr(models.native, "_torch_version", lambda: "0.0.0")
    assert models.native.module_name() != name
    monkeypatch.undo()
    for n, source in enumerate(models.native.SOURCES):  # each source: the decode step, the X-ray's layer
        edited = tmp_path / source.name
        edited.write_bytes(source.read_bytes() + b"\n// edited\n")
        sources = list(models.native.SOURCES)
        sources[n] = edited
        monkeypatch.setattr(models.native, "SOURCES", tuple(sources))
        assert models.native.module_name() != name
        monkeypatch.undo()


def test_the_environment_build_is_whole_and_current() -> None:
    # ./run's setup built it into ROOT (a clean checkout's new venv compiles it from scratch there, so
    # CI exercises build() itself without a second 30-s compile here): now a rebuild is a no-op.
    command = [sys.executable, "-m", "models.native"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    name = models.native.module_name()
    assert name in [p.name for p in models.native.ROOT.iterdir()]
    assert (models.native.ROOT / name).stat().st_mode & 0o755 == 0o755  # readable by the image's user


def _replace_sampling(buffers: StepBuffers, **changes: object) -> StepBuffers:
    return dataclasses.replace(buffers, sampling=dataclasses.replace(buffers.sampling, **changes))


def _without(buffers: StepBuffers, name: str) -> SimpleNamespace:
    fields = {f.name: getattr(buffers, f.name) for f in dataclasses.fields(buffers) if f.name != name}
    return SimpleNamespace(**fields)


# (how the buffers or weights are broken, the error naming the field). A batch of 2 rows, V = 29, H = 16.
BROKEN_FIELDS: list[tuple[str, Callable[[StepBuffers, FusedCharLSTM], tuple[object, object]], str]] = [
    (
        "dtype",
        lambda b, w: (_replace_sampling(b, logits=b.sampling.logits.double()), w),
        r"StepBuffers\.sampling\.logits: expected float32 of shape \(n, V\) = \(2, 29\) on the CPU, "
        r"got float64 of shape \(2, 29\)",
    ),
    (
        "shape",
        lambda b, w: (dataclasses.replace(b, h=(b.h[0], torch.zeros(2, 17))), w),
        r"StepBuffers\.h\[1\]: expected float32 of shape \(n, H\) = \(2, 16\) on the CPU, "
        r"got float32 of shape \(2, 17\)",
    ),
    (
        "layers",
        lambda b, w: (dataclasses.replace(b, c=b.c[:1]), w),
        r"StepBuffers\.c: expected 2 entries \(one per layer\), got 1",
    ),
    ("missing", lambda b, w: (_without(b, "tanh_c"), w), r"StepBuffers\.tanh_c: missing"),
    (
        "not a tensor",
        lambda b, w: (
            dataclasses.replace(b, sampling=SimpleNamespace(**(vars(b.sampling) | {"ids": [0]}))),
            w,
        ),
        r"StepBuffers\.sampling\.ids: expected int64 of shape \(n, 1\) = \(2, 1\) on the CPU, got list",
    ),
    (
        "weights",
        lambda b, w: (b, SimpleNamespace(**(vars(w) | {"head_bias": w.head_bias.long()}))),
        r"FusedCharLSTM\.head_bias: expected float32 of shape \(V,\) = \(29,\) on the CPU, got int64",
    ),
]


@pytest.mark.parametrize(
    ("broken", "message"), [(b, m) for _, b, m in BROKEN_FIELDS], ids=[i for i, _, _ in BROKEN_FIELDS]
)
def test_the_native_step_refuses_buffers_it_cannot_read_naming_the_field(
    broken: Callable[[StepBuffers, FusedCharLSTM], tuple[object, object]], message: str
) -> None:
    # The Stepper reads StepBuffers and FusedCharLSTM by field name: a rename, a dtype or a shape that
    # the C++ step does not expect fails when it is made, with the field's name, not inside a step.
    native = models.native.load()
    assert native is not None
    weights = random_weights(2, 16, seed=8)
    batch = DecodeBatch(weights, VOCAB, 4, native=True)
    buffers = batch.buffers.for_rows(2)
    native.Stepper(buffers, weights)  # the real ones pass
    bad_buffers, bad_weights = broken(buffers, weights)
    with pytest.raises(ValueError, match=message):
        native.Stepper(bad_buffers, bad_weights)  # type: ignore[arg-type]
