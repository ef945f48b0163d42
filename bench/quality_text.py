"""Text quality target: time and steps for the char-LSTM to reach >= 60 % validation accuracy.

Trains through the project's own loop, `models.train.train(config, data, callbacks)`, on Grimms'
Fairy Tales (Project Gutenberg boilerplate stripped; read from ../shared when it sits beside the
repository, else the built-in CPython documentation; `--corpus PATH` picks another, see corpus.py),
with the default `TextConfig` (2 x 128 LSTM, seq 30, batch 64, lr 2e-3, ...) unless flags say
otherwise. The run stops at the target or at the wall-clock cap (10 minutes), then prints the
validation-accuracy curve and a greedy and a T=0.8 sample.

Wall seconds are measured from the start of `train` and include evaluation and the loop's own
training-time samples (every `sample_every` steps), i.e. what a user waits for.

    .venv/bin/python bench/quality_text.py --quick      # < 2 minutes, a smoke run, not the target
    .venv/bin/python bench/quality_text.py              # default TextConfig, 10-minute cap
    .venv/bin/python bench/quality_text.py --lr 4e-3 --batch-size 128 --eval-every 250
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from corpus import add_corpus_argument, load_bench_corpus
from models.callbacks import TrainingCallbacks
from models.checkpoint import load_model
from models.config import TextConfig
from models.data import Vocabulary, make_data
from models.sample import generate
from models.train import train

TARGET = 0.60


class Recorder(TrainingCallbacks):
    """Prints each validation pass; stops at the target accuracy or when the wall-clock cap is spent."""

    def __init__(self, target: float, cap_s: float) -> None:
        self.target = target
        self.cap_s = cap_s
        self.started = time.perf_counter()
        self.curve: list[tuple[int, float, float, float]] = []  # (step, seconds, val_loss, val_accuracy)
        self.reached: tuple[int, float] | None = None
        self.capped = False
        self.chars_per_s: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if "chars_per_s" in metrics:
            self.chars_per_s = metrics["chars_per_s"]
        if "val_accuracy" not in metrics:
            return
        seconds, accuracy = self.elapsed(), metrics["val_accuracy"]
        self.curve.append((step, seconds, metrics["val_loss"], accuracy))
        print(
            f"  step {step:6d}  {seconds:7.1f} s  val_loss {metrics['val_loss']:.3f}  "
            f"val_accuracy {accuracy:.3f}  train chars/s {self.chars_per_s or 0:,.0f}",
            flush=True,
        )
        if accuracy >= self.target and self.reached is None:
            self.reached = (step, seconds)

    def on_step(self, step: int) -> None:
        if self.elapsed() > self.cap_s:
            self.capped = True

    def should_stop(self) -> bool:
        return self.reached is not None or self.capped


def wait_for_quiet_machine(max_load: float, max_wait_s: float) -> None:
    """Poll the 1-minute load average until it is below `max_load` (give up after `max_wait_s`)."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"torch threads {torch.get_num_threads()}, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 60-second smoke run (not the target)")
    parser.add_argument("--cap", type=float, default=600.0, help="wall-clock cap in seconds")
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--lr", type=float, help="learning rate (default: TextConfig's)")
    parser.add_argument("--batch-size", type=int, help="default: TextConfig's")
    parser.add_argument("--seq-length", type=int, help="default: TextConfig's")
    parser.add_argument("--dropout", type=float, help="between LSTM layers (default: TextConfig's)")
    parser.add_argument("--optimizer", choices=["rmsprop", "adam", "sgd"], help="default: TextConfig's")
    parser.add_argument("--eval-every", type=int, default=None, help="default: TextConfig's")
    parser.add_argument("--sample-every", type=int, default=None, help="default: TextConfig's")
    parser.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for load < 1.5")
    add_corpus_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.cap, args.max_wait = 60.0, 5.0

    overrides = {
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "seq_length": args.seq_length,
        "optimizer": args.optimizer,
        "dropout": args.dropout,
        "eval_every": args.eval_every,
        "sample_every": args.sample_every,
    }
    config = TextConfig(
        train_steps=1_000_000,  # the cap and the target end the run, not the step count
        checkpoint_every=1_000_000,  # intermediate checkpoints are not what is measured
        device="cpu",
        **{k: v for k, v in overrides.items() if v is not None},
    )
    text = load_bench_corpus(args.corpus)
    data = make_data(config, text)
    print(f"vocabulary {len(data.vocab)}")
    print(
        "config: "
        + ", ".join(
            f"{k}={v}"
            for k, v in config.model_dump().items()
            if k not in ("task", "device", "train_steps", "checkpoint_every")
        )
    )
    changed = {k: v for k, v in overrides.items() if v is not None}
    print(f"changed from TextConfig defaults: {changed or 'nothing'}")

    wait_for_quiet_machine(1.5, args.max_wait)
    print(f"{machine_line()}; {os.cpu_count()} CPUs; torch {torch.__version__}", flush=True)
    recorder = Recorder(args.target, args.cap)
    result = train(config, data, recorder)
    seconds = recorder.elapsed()

    print(f"\nvalidation accuracy curve (step: accuracy), {machine_line()}:")
    print("  " + "  ".join(f"{s}:{a:.3f}" for s, _, _, a in recorder.curve))
    if recorder.reached is not None:
        step, secs = recorder.reached
        print(
            f"\nRESULT: val_accuracy >= {args.target:.2f} at step {step}, {secs:.1f} s (cap {args.cap:.0f} s)"
        )
    else:
        why = "wall-clock cap" if recorder.capped else "step budget"
        best = max(a for *_, a in recorder.curve)
        print(
            f"\nRESULT: target {args.target:.2f} NOT reached: best val_accuracy {best:.3f}, "
            f"{result.step} steps, {seconds:.1f} s ({why}, cap {args.cap:.0f} s)"
        )

    model = load_model(result.final_checkpoint)
    vocab = Vocabulary(result.final_checkpoint["vocab"])
    seed_text = "Once upon a time"
    for temperature in (0.0, 0.8):
        sample = generate(model, vocab, seed_text, 300, temperature, random_seed=0)
        name = "greedy" if temperature == 0 else f"T={temperature}"
        print(f"\nsample ({name}):\n{seed_text}{sample.text}")


if __name__ == "__main__":
    main()
