"""The memory horizon of char-LSTMs trained on short and long windows: the figure behind the README's
"how to read it".

Trains one small char_lstm per `--seq-lengths` value through the project's loop (`models.train.train`,
the same steps, seed and corpus for each; see corpus.py), then measures each final model's memory
horizon (models/horizon.py) on the validation split, and its untrained initial weights' too, and
prints mean ||d log p / d e(x_{t-k})|| at a few lags, relative to k = 0, and the first lag where it
has fallen below 1 % of k = 0.

    .venv/bin/python bench/memory_horizon.py                       # seq_length 4 and 64, 300 steps each
    .venv/bin/python bench/memory_horizon.py --steps 100 --seq-lengths 2 32
"""

from __future__ import annotations

import argparse
import time

import torch

from corpus import add_corpus_argument, load_bench_corpus
from models.checkpoint import load_model
from models.config import TextConfig
from models.data import make_data
from models.horizon import memory_horizon
from models.registry import architecture_for, build_model, initialisation_for
from models.train import train

SHOWN_LAGS = (0, 1, 2, 4, 8, 16, 32, 64)


def fall_lag(norms: list[float], fraction: float = 0.01) -> int | None:
    """The first k whose norm is below `fraction` of k = 0's, or None if none is."""
    return next((k for k, n in enumerate(norms) if n < fraction * norms[0]), None)


def row(label: str, norms: list[float], lags: list[int]) -> str:
    relative = "  ".join(f"{norms[k] / norms[0]:9.2e}" for k in lags)
    fall = fall_lag(norms)
    return (
        f"{label:<28} {norms[0]:9.3e}  {relative}  {'>' + str(len(norms) - 1) if fall is None else fall:>5}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_corpus_argument(parser)
    parser.add_argument("--seq-lengths", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--max-lag", type=int, default=64)
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text = load_bench_corpus(args.corpus)
    lags = [k for k in SHOWN_LAGS if k <= args.max_lag]
    print(f"{'model':<28} {'k=0 norm':>9}  " + "  ".join(f"{'k=' + str(k):>9}" for k in lags) + "  1%-lag")
    for seq_length in args.seq_lengths:
        config = TextConfig(
            task="text",
            hidden_size=args.hidden_size,
            embedding_size=32,
            num_layers=1,
            seq_length=seq_length,
            batch_size=32,
            train_steps=args.steps,
            eval_every=args.steps,
            checkpoint_every=args.steps,
            sample_every=args.steps,
            device="cpu",
        )
        data = make_data(config, text)
        if seq_length == args.seq_lengths[0]:
            torch.manual_seed(config.seed)  # the loop's own initial weights, before any step
            untrained = build_model(architecture_for(config, len(data.vocab)), **initialisation_for(config))
            h = memory_horizon(untrained, data.val_ids, max_lag=args.max_lag, windows=args.windows)
            print(row("untrained", h.mean_norm, lags))
        started = time.perf_counter()
        result = train(config, data)
        seconds = time.perf_counter() - started
        model = load_model(result.final_checkpoint)
        h = memory_horizon(model, data.val_ids, max_lag=args.max_lag, windows=args.windows)
        bits = result.metrics["val_loss"] / torch.log(torch.tensor(2.0)).item()
        print(
            row(f"seq {seq_length}, {args.steps} st, {bits:.2f} b/c", h.mean_norm, lags)
            + f"  ({seconds:.0f} s)"
        )


if __name__ == "__main__":
    main()
