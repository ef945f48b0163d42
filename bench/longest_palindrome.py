"""How long a palindrome a recipe learns in a fixed time (issue 20: "200? 500?").

One run of the project's loop (`models.train.train`) per model with its recipe: a curriculum from
10 digits, growing by `--step` digits whenever a window of training batches reaches 95 % accuracy,
towards `--max-length`, stopped by the wall-clock cap (20 minutes by default). Evaluation at the
target length would cost more than the training as lengths grow, so the loop evaluates rarely; at
the end the final weights are scored on fresh held-out palindromes (the same held-out set the
service uses, `PalindromeData`) at every length the curriculum trained at, from the longest down.

"Learned length L" below means: held-out accuracy >= 99 % at input_length L after the cap.

    .venv/bin/python bench/longest_palindrome.py                      # LSTM and RNN, 20 minutes each
    .venv/bin/python bench/longest_palindrome.py --models lstm --cap 120 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch

from models.callbacks import TrainingCallbacks
from models.checkpoint import load_model
from models.config import PalindromeConfig
from models.data import PalindromeData, make_data
from models.train import _evaluate, train

LEARNED = 0.99

# Each model's recipe. LSTM: the measured best (Adam, chrono, curriculum; README "Long memory").
# Vanilla RNN: IRNN (Le, Jaitly & Hinton 2015) with Adam and the same curriculum.
RECIPES: dict[str, dict[str, Any]] = {
    "lstm": {"model": "lstm", "optimizer": "adam", "learning_rate": 1e-3, "init": "chrono"},
    "rnn": {"model": "rnn", "optimizer": "adam", "learning_rate": 1e-4, "init": "identity"},
}


class Clock(TrainingCallbacks):
    """Stops at the cap; prints each curriculum promotion with its time."""

    def __init__(self, cap_s: float) -> None:
        self.cap_s = cap_s
        self.started = time.perf_counter()
        self.lengths: list[tuple[int, float, int]] = []  # (length, seconds, step) at each promotion

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        length = metrics.get("train_length")
        if length is not None and (not self.lengths or self.lengths[-1][0] != int(length)):
            seconds = time.perf_counter() - self.started
            self.lengths.append((int(length), seconds, step))
            print(f"  step {step:6d}  {seconds:7.1f} s  train_length {int(length)}", flush=True)

    def should_stop(self) -> bool:
        return time.perf_counter() - self.started > self.cap_s


def held_out_accuracy(model: torch.nn.Module, length: int) -> float:
    data = PalindromeData(length)
    return _evaluate(
        model, data.eval_batches(torch.device("cpu")), True, torch.device("cpu"), carry_state=False
    )["val_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lstm", "rnn"], choices=sorted(RECIPES))
    parser.add_argument("--cap", type=float, default=1200.0, help="wall-clock seconds per model")
    parser.add_argument("--max-length", type=int, default=1000)
    parser.add_argument("--step", type=int, default=10, help="digits added at each curriculum promotion")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load}")
    results = []
    for name in args.models:
        config = PalindromeConfig(
            **RECIPES[name],
            input_length=args.max_length,
            hidden_size=128,
            batch_size=128,
            max_norm=10.0,
            curriculum_start=10,
            curriculum_step=args.step,
            curriculum_threshold=0.95,
            curriculum_window=50,
            train_steps=1_000_000,
            log_every=25,
            eval_every=1_000_000,  # the cap ends the run before any evaluation at max_length
            checkpoint_every=1_000_000,
            device="cpu",
        )
        print(f"\n[{name}] {config.model_dump(exclude={'task', 'device'})}", flush=True)
        clock = Clock(args.cap)
        # The final checkpoint evaluates at max_length once; that time is after the cap and not counted.
        result = train(config, make_data(config), clock)
        model = load_model(result.final_checkpoint)
        reached = clock.lengths[-1][0] if clock.lengths else 10
        learned, scores = None, []
        for length in sorted({n for n, _, _ in clock.lengths}, reverse=True):
            accuracy = held_out_accuracy(model, length)
            scores.append((length, accuracy))
            if accuracy >= LEARNED:
                learned = length
                break
        print(f"  held-out accuracy of the final weights: {', '.join(f'L={n}: {a:.3f}' for n, a in scores)}")
        results.append((name, result.step, reached, learned))
    print(f"\nwithin {args.cap / 60:.0f} minutes each:")
    for name, steps, reached, learned in results:
        print(f"  {name:<5} {steps:6d} steps, reached {reached}, learned (>= 99 % held out) {learned}")


if __name__ == "__main__":
    main()
