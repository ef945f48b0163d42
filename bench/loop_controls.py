"""What each repetition control does to a greedy char-LSTM's loop, measured on one trained model.

A greedy character model falls into an exact loop of a few dozen to a few hundred characters. This
trains a 2 x 128 char-LSTM for `--train-seconds` on the benchmark corpus (bench/corpus.py: Grimms' Fairy
Tales beside the repository, else the built-in CPython documentation), then generates 2,000 greedy
characters after one prompt with each control in turn (temperature 0 unless the row says otherwise), in
one decode batch, and prints for each:

    period     the length of the exact cycle the text ends in (none: no cycle within the last 1,000)
    distinct   distinct 8-grams / all 8-grams of the text (1.0: no 8 characters ever repeat)
    excerpt    characters 1,000 to 1,100

    .venv/bin/python bench/loop_controls.py [--train-seconds 180] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from corpus import add_corpus_argument, load_bench_corpus
from models.callbacks import TrainingCallbacks
from models.char_lstm import CharLSTM
from models.config import TextConfig
from models.data import make_data
from models.decode.batch import decode
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream
from models.train import train

PROMPT = "The king said to his daughter, "
LENGTH = 2000
CONTROLS: list[tuple[str, dict[str, Any]]] = [
    ("greedy, no control", {}),
    ("repetition_penalty 1.2", {"repetition_penalty": 1.2}),
    ("repetition_penalty 1.5", {"repetition_penalty": 1.5}),
    ("presence_penalty 0.5", {"presence_penalty": 0.5}),
    ("frequency_penalty 0.2", {"frequency_penalty": 0.2}),
    ("frequency_penalty 0.5", {"frequency_penalty": 0.5}),
    ("no_repeat_ngram_size 8", {"no_repeat_ngram_size": 8}),
    ("no_repeat_ngram_size 12", {"no_repeat_ngram_size": 12}),
    ("temperature 0.5 (sampled)", {"temperature": 0.5}),
]


class Deadline(TrainingCallbacks):
    def __init__(self, seconds: float) -> None:
        self.end, self.stop = time.monotonic() + seconds, False

    def on_step(self, step: int) -> None:
        self.stop = time.monotonic() > self.end

    def should_stop(self) -> bool:
        return self.stop


def period(text: str, window: int = 1000) -> int | None:
    """The shortest p such that the last `window` characters repeat with period p, if any."""
    tail = text[-window:]
    for p in range(1, window // 2):
        if tail[p:] == tail[:-p]:
            return p
    return None


def distinct(text: str, n: int = 8) -> float:
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--train-seconds", type=float, default=180)
    add_corpus_argument(parser)
    args = parser.parse_args()
    text = load_bench_corpus(args.corpus)
    config = TextConfig(
        hidden_size=128, num_layers=2, optimizer="adam", learning_rate=2e-3, train_steps=1_000_000,
        eval_every=1_000_000, checkpoint_every=1_000_000, sample_every=1_000_000, log_every=1_000_000,
        device="cpu",
    )  # fmt: skip
    torch.manual_seed(config.seed)
    data = make_data(config, text)
    started = time.monotonic()
    result = train(config, data, Deadline(args.train_seconds))
    print(f"trained 2 x 128 for {result.step} steps ({time.monotonic() - started:.0f} s)")
    model = CharLSTM(len(data.vocab), config.embedding_size, 128, 2)
    model.load_state_dict(result.final_checkpoint["model"])
    model.eval()
    weights = FusedCharLSTM(model)
    streams = [
        Stream(PROMPT, LENGTH, random_seed=1, **({"temperature": 0.0} | params)) for _, params in CONTROLS
    ]
    texts = decode(weights, data.vocab, streams, capacity=len(streams))
    print(f"\nprompt {PROMPT!r}, {LENGTH} characters each\n")
    print(f"{'control':28s} {'period':>7s} {'distinct':>9s}   excerpt (characters 1,000 to 1,100)")
    for (name, _), generated in zip(CONTROLS, texts, strict=True):
        cycle = period(generated)
        excerpt = generated[1000:1100].replace("\n", "\\n")
        print(f"{name:28s} {cycle if cycle else 'none':>7} {distinct(generated):9.2f}   {excerpt}")


if __name__ == "__main__":
    main()
