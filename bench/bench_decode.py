"""Text generation throughput (characters/s): the decode engine against the loops it replaces.

Workload: a CharLSTM of the TextConfig defaults (2 x 128, embedding 64) with random weights and an
80-character vocabulary, seed text "The ", temperature 1, no top-k/top-p, one CPU thread.

    naive       one `model(x, state)` call per character under torch.no_grad, torch.multinomial
    generate    models.sample.generate (one stream)
    engine xB   models.decode.batch.DecodeBatch with B streams of the same request and different seeds
                (B = 1: the single-stream figure; B = 8, 32, 256: aggregate over the batch), its
                PyTorch step
    native xB   the same with the native (C++) step of models/native, when built
                (`python -m models.native`); its texts are bitwise the engine's, and the last lines
                give its speed-up over the PyTorch step at each batch size
    penalties x32   engine/native x32 with repetition 1.2, presence 0.3, frequency 0.2 and
                    no_repeat_ngram_size 6 on every row (the logit processors' cost)
    logprobs x32    engine/native x32 with logprobs=5 on every row (the report's cost)

Every figure counts characters produced over the whole call, priming of the seed text included. The
variants run interleaved in one process after a warm-up; each figure is the median of the repeats,
so drift in machine load hits all alike. Targets (measured later over HTTP, so the engine's own
figures must clear them with room): single stream >= 5x naive, 32 streams >= 20x naive in aggregate.

    .venv/bin/python bench/bench_decode.py [--repeats 5] [--length 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import models.native
from models.char_lstm import CharLSTM
from models.data import Vocabulary
from models.decode.batch import DecodeBatch, decode
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream
from models.sample import generate

VOCAB = Vocabulary([chr(c) for c in range(32, 112)])  # 80 printable characters
SEED_TEXT = "The "
# Every penalty on at once: the dearest row the logit processors can make.
PENALTIES: dict[str, Any] = dict(
    repetition_penalty=1.2, presence_penalty=0.3, frequency_penalty=0.2, no_repeat_ngram_size=6
)


def naive_loop(model: CharLSTM, length: int, generator: torch.Generator) -> list[int]:
    """What a first implementation does: the module per character, multinomial sampling."""
    out = []
    with torch.no_grad():
        logits, state = model(VOCAB.encode(SEED_TEXT)[None])
        for _ in range(length):
            probs = torch.softmax(logits[0, -1] / 1.0, dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)
            out.append(int(next_id))
            logits, state = model(next_id[None], state)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, the same for all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--length", type=int, default=400, help="characters per stream")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CharLSTM(len(VOCAB), embedding_size=64, hidden_size=128, num_layers=2).eval()
    weights = FusedCharLSTM(model)
    n = args.length
    generator = torch.Generator().manual_seed(0)

    def engine(batch_size: int, native: bool, **extras: Any) -> Callable[[], object]:
        streams = [Stream(SEED_TEXT, n, random_seed=i, **extras) for i in range(batch_size)]
        return lambda: decode(weights, VOCAB, streams, capacity=batch_size, native=native)

    def scored(batch_size: int, native: bool) -> Callable[[], object]:
        """A batch whose every row asks for logprobs=5, read after each step as an engine would."""
        streams = [Stream(SEED_TEXT, n, random_seed=i, logprobs=5) for i in range(batch_size)]

        def run() -> int:
            batch = DecodeBatch(weights, VOCAB, batch_size, native=native)
            for stream in streams:
                batch.add(stream)
            reports = 0
            while len(batch):
                batch.step()
                reports += len(batch.last_logprobs)
            return reports

        return run

    batch_sizes = (1, 8, 32, 256)
    has_native = models.native.load() is not None
    runs: dict[str, tuple[Callable[[], object], int]] = {
        "naive": (lambda: naive_loop(model, n, generator), n),
        "generate": (lambda: generate(model, VOCAB, SEED_TEXT, n, random_seed=0), n),
    }
    for b in batch_sizes:  # side by side, so each pair is measured at nearly the same moment
        runs[f"engine x{b}"] = (engine(b, native=False), b * n)
        if has_native:
            runs[f"native x{b}"] = (engine(b, native=True), b * n)
    for native in (False, True) if has_native else (False,):
        step = "native" if native else "engine"
        runs[f"{step} x32 penalties"] = (engine(32, native, **PENALTIES), 32 * n)
        runs[f"{step} x32 logprobs"] = (scored(32, native), 32 * n)
    for run, _ in runs.values():  # warm-up: allocator, lazy inits, BLAS kernels
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (run, _) in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)

    rate = {name: chars / statistics.median(seconds[name]) for name, (_, chars) in runs.items()}
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s); CharLSTM 2 x 128, vocab {len(VOCAB)}")
    print(f"{n} characters per stream, median of {args.repeats} repeats")
    for name, (_, chars) in runs.items():
        spread = [chars / s for s in seconds[name]]
        print(
            f"  {name:20s} {rate[name]:10.0f} chars/s  {rate[name] / rate['naive']:6.1f}x naive"
            f"   (min {min(spread):.0f}, max {max(spread):.0f})"
        )
    print("targets: engine x1 >= 5x naive, engine x32 >= 20x naive (over HTTP, so with room here)")
    for step in ("engine", "native") if has_native else ("engine",):
        for extra in ("penalties", "logprobs"):
            plain, other = rate[f"{step} x32"], rate[f"{step} x32 {extra}"]
            print(
                f"  {step} x32 {extra:9s} / plain: {other / plain:5.2f}x"
                f"   ({1e6 * 32 / plain:6.0f} -> {1e6 * 32 / other:6.0f} us per step)"
            )
    if not has_native:
        print("native step not built (python -m models.native): no native rows")
        return
    for b in batch_sizes:
        py, cc = rate[f"engine x{b}"], rate[f"native x{b}"]
        print(
            f"  x{b:<4d} native / PyTorch step: {cc / py:5.2f}x"
            f"   ({1e6 * b / py:6.0f} -> {1e6 * b / cc:6.0f} us per step, priming included)"
        )


if __name__ == "__main__":
    main()
