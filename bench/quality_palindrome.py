"""Palindrome quality targets: steps and wall seconds for the LSTM to reach 100 % held-out accuracy.

Targets (from the issue), on this machine's CPU, through the project's own loop
`models.train.train(config, data, callbacks)`:
- input_length 20 at 100 % held-out accuracy within 60 s,
- input_length >= 30 at 100 % within 10 minutes.
"Length" here is `PalindromeConfig.input_length`: the digits the model reads; the target is the
digit after them (equal to the first), so the palindrome itself has input_length + 1 digits.

The issue also reports that plain nn.LSTM + Adam with its default initialisation stays at chance
(10 %) at length 21 for 4,000 steps. The ablation below reproduces that and shows the cause:

    c(t) = g(t) i(t) + f(t) c(t-1)   so   dc(T)/dc(1) = prod_{t=2..T} f(t)

The only path by which the first digit reaches the last prediction is the cell state, and along it
the memory (and the gradient that would teach the net to keep it) is multiplied by f at every step.
With a forget-gate bias ~0 (nn.LSTM's default: b_ih + b_hh ~ U(-1/sqrt(H), 1/sqrt(H)), i.e. ~0) the
gate starts at f ~ sigmoid(0) = 0.5, so after ~20 steps the signal is ~0.5^20 ~ 1e-6 of what it
was: the gradient carries no usable information about digit 1, and the net settles on the
best it can do without it, the uniform guess (loss ln 10 = 2.303, accuracy 10 %). A forget-gate bias
of 1 (f ~ 0.73, 0.73^20 ~ 2e-3) keeps the memory path open long enough for the gradient to grow f
further on the units that need it; larger biases or chrono initialisation (Tallec & Ollivier 2018,
b_f ~ log U(1, T_max - 1)) push further. The printed gradient-flow figures at initialisation
(||dL/dh(1)|| / ||dL/dh(T)||) show the vanishing directly, before any training.

The ablation arms change one thing at a time from the issue's setup, so the other factors show up
too: the optimizer and learning rate (RMSprop at 1e-3, the course default, against Adam at 1e-3),
scalar instead of one-hot digits (the net must first learn to separate ten values on one input
line), and gradient clipping (max_norm 10 against none).

Also printed: the vanilla RNN and the Phased LSTM at the same lengths and step budget, their
held-out accuracy curves beside the LSTM's.

    .venv/bin/python bench/quality_palindrome.py --quick          # < 2 minutes
    .venv/bin/python bench/quality_palindrome.py                  # the full report
    .venv/bin/python bench/quality_palindrome.py --lengths 20 30 40 --cap 60 600 600
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from models.callbacks import TrainingCallbacks
from models.config import PalindromeConfig
from models.data import make_data
from models.gradient_flow import hidden_gradient_norms
from models.lstm import LSTM
from models.registry import architecture_for, build_model
from models.train import train

CHANCE = 0.1  # ten digits


# ---------------------------------------------------------------------------------------------
# Measuring one run


@dataclass
class Run:
    """One training run's held-out accuracy curve and when (if ever) it reached 100 %."""

    label: str
    config: PalindromeConfig
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, seconds, val_accuracy)
    solved_step: int | None = None
    solved_seconds: float | None = None
    steps: int = 0
    seconds: float = 0.0
    capped: bool = False  # stopped by the wall-clock cap
    train_length: float | None = None  # the curriculum's latest training length (None: no curriculum)

    @property
    def final_accuracy(self) -> float:
        return self.curve[-1][2] if self.curve else float("nan")


class Recorder(TrainingCallbacks):
    """Records every validation pass; stops once val_accuracy is 1.0 or the wall-clock cap is spent."""

    def __init__(self, run: Run, cap_s: float, stop_at_solved: bool = True) -> None:
        self.run = run
        self.cap_s = cap_s
        self.stop_at_solved = stop_at_solved
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        length = metrics.get("train_length")
        if length is not None and length != self.run.train_length:  # the curriculum moved on
            print(f"  step {step}: train_length {length:.0f} ({self.elapsed():.1f} s)", flush=True)
            self.run.train_length = length
        if "val_accuracy" not in metrics:
            return
        seconds, accuracy = self.elapsed(), metrics["val_accuracy"]
        self.run.curve.append((step, seconds, accuracy))
        if accuracy == 1.0 and self.run.solved_step is None:
            self.run.solved_step, self.run.solved_seconds = step, seconds

    def on_step(self, step: int) -> None:
        if self.elapsed() > self.cap_s:
            self.run.capped = True

    def should_stop(self) -> bool:
        return (self.stop_at_solved and self.run.solved_step is not None) or self.run.capped


MAX_WAIT_S = 60.0  # how long to wait for a quiet machine before a run; --max-wait sets it


def wait_for_quiet_machine(max_load: float = 1.5, max_wait_s: float | None = None) -> None:
    """Poll the 1-minute load average until it is below `max_load` (give up after `max_wait_s`)."""
    deadline = time.monotonic() + (MAX_WAIT_S if max_wait_s is None else max_wait_s)
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"torch threads {torch.get_num_threads()}, load average {load}"


def run_one(
    label: str,
    config: PalindromeConfig,
    cap_s: float,
    *,
    build: Callable[[dict], nn.Module] | None = None,
    stop_at_solved: bool = True,
) -> Run:
    """Train through `models.train.train`; `build` makes the model instead of the registry (ablations only).

    The registry deliberately exposes no initialisation knobs; passing the ablation's model to the
    loop keeps it on exactly the loop, data, loss, clipping and evaluation of the real runs.
    """
    wait_for_quiet_machine()
    print(f"\n[{label}] {machine_line()}", flush=True)
    print(f"  config: {describe(config)}", flush=True)
    run = Run(label, config)
    data = make_data(config)
    recorder = Recorder(run, cap_s, stop_at_solved)
    model = None
    if build is not None:
        torch.manual_seed(config.seed)  # what train() does before it builds the registry's model
        model = build(architecture_for(config))
    result = train(config, data, recorder, model=model)
    run.steps, run.seconds = result.step, recorder.elapsed()
    curve = "  ".join(f"{s}:{a:.3f}" for s, _, a in run.curve)
    print(f"  curve (step:val_accuracy): {curve}", flush=True)
    if run.solved_step is not None:
        print(f"  -> 100 % at step {run.solved_step}, {run.solved_seconds:.1f} s", flush=True)
    else:
        why = f"wall-clock cap {cap_s:.0f} s" if run.capped else f"step budget {config.train_steps}"
        print(
            f"  -> not solved: {run.final_accuracy:.3f} after {run.steps} steps, {run.seconds:.1f} s ({why})",
            flush=True,
        )
    return run


def describe(config: PalindromeConfig) -> str:
    keys = (
        "model",
        "input_length",
        "hidden_size",
        "batch_size",
        "optimizer",
        "learning_rate",
        "max_norm",
        "input_encoding",
        "train_steps",
        "eval_every",
        "eval_size",
        "seed",
        "init",
        "curriculum_start",
    )
    return ", ".join(f"{k}={getattr(config, k)}" for k in keys)


# ---------------------------------------------------------------------------------------------
# Models for the ablation


class TorchLSTM(nn.Module):
    """nn.LSTM + a linear head on every step: the issue's "plain nn.LSTM", in the project's interface."""

    def __init__(
        self, input_size: int, hidden_size: int, num_classes: int, forget_bias: float | None
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)
        if forget_bias is not None:
            # nn.LSTM adds bias_ih and bias_hh; gate order (i, f, g, o), so the forget slice is [H:2H].
            H = hidden_size
            with torch.no_grad():
                self.lstm.bias_ih_l0[H : 2 * H].fill_(forget_bias)
                self.lstm.bias_hh_l0[H : 2 * H].zero_()

    def forward(self, inputs: torch.Tensor, state=None):
        """inputs (B, T, D) -> logits (B, T, C), (h, c) each (B, H)."""
        if state is not None:
            state = (state[0].unsqueeze(0), state[1].unsqueeze(0))
        out, (h, c) = self.lstm(inputs, state)  # (B, T, H)
        return self.head(out), (h[0], c[0])


def torch_lstm(forget_bias: float | None) -> Callable[[dict], nn.Module]:
    def build(architecture: dict) -> nn.Module:
        return TorchLSTM(
            architecture["input_size"], architecture["hidden_size"], architecture["num_classes"], forget_bias
        )

    return build


def our_lstm(forget_bias: float) -> Callable[[dict], nn.Module]:
    def build(architecture: dict) -> nn.Module:
        kwargs = {k: v for k, v in architecture.items() if k != "type"}
        return LSTM(**kwargs, forget_bias=forget_bias)

    return build


def chrono_lstm(max_length: int) -> Callable[[dict], nn.Module]:
    """Chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U(1, T_max - 1), b_i = -b_f."""

    def build(architecture: dict) -> nn.Module:
        kwargs = {k: v for k, v in architecture.items() if k != "type"}
        model = LSTM(**kwargs)
        H = model.hidden_size
        with torch.no_grad():
            b_f = torch.log(torch.empty(H).uniform_(1, max(max_length - 1, 2)))
            model.b[H : 2 * H] = b_f
            model.b[:H] = -b_f
        return model

    return build


def gradient_flow_at_init(length: int, forget_biases: list[float], hidden_size: int) -> None:
    """||dL/dh(t)|| at initialisation for each forget bias: how much of the last step's error
    signal reaches the first digit before any training."""
    print(f"\nGradient flow at initialisation (input_length {length}, hidden {hidden_size}, batch 256):")
    print("  forget bias | f = sigmoid(b_f) | f^(T-1)  | ||dL/dh(1)|| / ||dL/dh(T)||")
    config = PalindromeConfig(input_length=length, hidden_size=hidden_size, device="cpu")
    data = make_data(config)
    inputs, targets = data.train_batch(256, torch.Generator().manual_seed(0))
    for b_f in forget_biases:
        torch.manual_seed(0)
        model = LSTM(10, hidden_size, forget_bias=b_f)
        norms = hidden_gradient_norms(model, inputs, targets)
        f = 1 / (1 + math.exp(-b_f))
        print(f"  {b_f:11.1f} | {f:16.3f} | {f ** (length - 1):8.1e} | {norms[0] / norms[-1]:.1e}")
    torch.manual_seed(0)
    model = build_model({"type": "rnn", "input_size": 10, "hidden_size": hidden_size, "num_classes": 10})
    norms = hidden_gradient_norms(model, inputs, targets)
    print(f"  vanilla RNN (for scale)                      | {norms[0] / norms[-1]:.1e}")


# ---------------------------------------------------------------------------------------------
# Report


def curve_table(runs: list[Run]) -> str:
    """val_accuracy against step, one column per run; '.' once a run has stopped."""
    steps = sorted({s for run in runs for s, _, _ in run.curve})
    width = max(12, *(len(run.label) for run in runs))
    lines = ["  step " + "".join(f"{run.label:>{width + 2}}" for run in runs)]
    by_step = [{s: a for s, _, a in run.curve} for run in runs]
    for s in steps:
        cells = []
        for accs in by_step:
            cells.append(f"{accs[s]:>{width + 2}.3f}" if s in accs else f"{'.':>{width + 2}}")
        lines.append(f"{s:6d} " + "".join(cells))
    lines.append(
        "  secs "
        + "".join(f"{run.seconds:>{width + 2}.1f}" for run in runs)
        + "   (wall seconds for the whole run, evaluation included)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small lengths and budgets: < 2 minutes")
    parser.add_argument("--lengths", type=int, nargs="+", help="input lengths for the LSTM targets")
    parser.add_argument("--cap", type=float, nargs="+", help="wall-clock cap (s) per length")
    parser.add_argument("--max-steps", type=int, default=20_000, help="step budget for the LSTM runs")
    # The course defaults. Adam at lr 3e-3 was measured too: it plateaus at chance far longer
    # (input_length 30: ~4,750 steps at 10 % before it snaps, 6,250 steps to 100 %).
    parser.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam", "sgd"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument(
        "--init", default="default", help="PalindromeConfig.init (models/init.py), e.g. chrono"
    )
    parser.add_argument(
        "--curriculum-start", type=int, help="PalindromeConfig.curriculum_start (default: off)"
    )
    parser.add_argument("--curriculum-step", type=int, default=5)
    parser.add_argument("--curriculum-threshold", type=float, default=0.95)
    parser.add_argument("--curriculum-window", type=int, default=50)
    parser.add_argument("--ablation-length", type=int, default=21)
    parser.add_argument("--ablation-steps", type=int, default=2000)
    parser.add_argument("--ablation-lr", type=float, default=1e-3, help="the issue's Adam default")
    parser.add_argument("--compare-steps", type=int, default=2000, help="step budget, all three models")
    parser.add_argument("--compare-cap", type=float, default=240.0, help="wall cap (s) for RNN/Phased LSTM")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for load < 1.5")
    args = parser.parse_args()
    global MAX_WAIT_S
    MAX_WAIT_S = 5.0 if args.quick else args.max_wait
    if args.quick:
        lengths = args.lengths or [10]
        caps = args.cap or [30.0]
        args.ablation_length, args.ablation_steps = 12, 150
        args.compare_steps, args.compare_cap = 150, 10.0
        args.max_steps = min(args.max_steps, 300)
    else:
        lengths = args.lengths or [20, 30, 40]
        caps = args.cap or [60.0, 600.0, 600.0]
    if len(caps) == 1:
        caps = caps * len(lengths)
    if len(caps) != len(lengths):
        parser.error("--cap needs one value, or one per length")

    print(f"{machine_line()}; {os.cpu_count()} CPUs; torch {torch.__version__}")
    base = dict(
        hidden_size=128,
        batch_size=128,
        max_norm=10.0,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        eval_every=args.eval_every,
        log_every=args.eval_every,
        checkpoint_every=1_000_000,  # no intermediate checkpoints: they are not what is measured
        seed=args.random_seed,
        device="cpu",
    )
    # The recipe's ingredients (issue 20) for the LSTM target runs only; the ablation and the
    # comparison keep their own setups.
    recipe = dict(
        init=args.init,
        curriculum_start=args.curriculum_start,
        curriculum_step=args.curriculum_step,
        curriculum_threshold=args.curriculum_threshold,
        curriculum_window=args.curriculum_window,
    )
    summary: list[str] = []

    # 1. The targets: our LSTM (forget bias 1, the default) until 100 % held-out accuracy.
    lstm_runs: dict[int, Run] = {}
    for length, cap in zip(lengths, caps, strict=True):
        config = PalindromeConfig(
            model="lstm", input_length=length, train_steps=args.max_steps, **base, **recipe
        )
        run = run_one(f"lstm L={length}", config, cap)
        lstm_runs[length] = run
        target = "met" if run.solved_seconds is not None and run.solved_seconds <= cap else "MISSED"
        reached = (
            f"100 % at step {run.solved_step} in {run.solved_seconds:.1f} s"
            if run.solved_step is not None
            else f"{run.final_accuracy:.3f} after {run.steps} steps"
        )
        summary.append(f"LSTM input_length {length}: {reached} (cap {cap:.0f} s: {target})")

    # 2. The RNN and the Phased LSTM with the same step budget (each stops early at 100 % too; the
    # LSTM column is the run above, which stopped when it got there).
    if not args.skip_compare:
        for length, cap in zip(lengths, caps, strict=True):
            lstm_run = lstm_runs[length]
            budget = max(args.compare_steps, lstm_run.steps)
            runs = [lstm_run]
            for model in ("rnn", "phased_lstm"):
                config = PalindromeConfig(model=model, input_length=length, train_steps=budget, **base)
                runs.append(run_one(f"{model} L={length}", config, min(cap, args.compare_cap)))
            print(f"\nHeld-out accuracy, input_length {length}, step budget {budget}:")
            print(curve_table(runs))
            for run in runs[1:]:
                summary.append(
                    f"{run.config.model} input_length {length}: {run.final_accuracy:.3f} after "
                    f"{run.steps} steps, {run.seconds:.1f} s"
                    + (" (wall cap)" if run.capped else "")
                    + (f", 100 % at step {run.solved_step}" if run.solved_step else "")
                )

    # 3. The ablation: why nn.LSTM + Adam with default init sits at chance at length 21.
    if not args.skip_ablation:
        length = args.ablation_length
        gradient_flow_at_init(length, [0.0, 1.0, 2.0], hidden_size=128)
        adam = dict(base, optimizer="adam", learning_rate=args.ablation_lr)
        rmsprop = dict(base, optimizer="rmsprop", learning_rate=1e-3)
        # (label, model builder, config fields): the setup first, then one change at a time.
        arms = [
            ("nn.LSTM default adam", torch_lstm(None), adam),
            ("nn.LSTM b_f=1 adam", torch_lstm(1.0), adam),
            ("ours b_f=0 adam", our_lstm(0.0), adam),
            ("ours b_f=1 adam", our_lstm(1.0), adam),
            ("ours chrono adam", chrono_lstm(length), adam),
            ("ours b_f=0 rmsprop", our_lstm(0.0), rmsprop),
            ("ours b_f=1 rmsprop", our_lstm(1.0), rmsprop),
            ("b_f=1 rms scalar", our_lstm(1.0), dict(rmsprop, input_encoding="scalar")),
            ("b_f=1 rms noclip", our_lstm(1.0), dict(rmsprop, max_norm=1e6)),
        ]
        runs = []
        for label, build, fields in arms:
            config = PalindromeConfig(
                model="lstm", input_length=length, train_steps=args.ablation_steps, **fields
            )
            runs.append(run_one(label, config, float("inf"), build=build))
        print(
            f"\nAblation, input_length {length}, {args.ablation_steps} steps (Adam lr {args.ablation_lr}, "
            "RMSprop lr 0.001; each stops at 100 %):"
        )
        print(curve_table(runs))
        for run in runs:
            summary.append(
                f"ablation {run.label}: best {max(a for _, _, a in run.curve):.3f}, final "
                f"{run.final_accuracy:.3f} after {run.steps} steps"
                + (f" (100 % at step {run.solved_step})" if run.solved_step else "")
            )

    print(f"\nSummary ({machine_line()}):")
    for line in summary:
        print(f"  {line}")
    print(
        "\nWhy length 21 sits at chance with nn.LSTM's default init: the first digit reaches the last "
        "prediction only through c(t) = g i + f c(t-1), so its memory and its gradient are multiplied "
        "by f at every step. nn.LSTM's forget bias is ~0, f ~ sigmoid(0) = 0.5, and 0.5^20 ~ 1e-6: "
        "the gradient that would teach the net to remember digit 1 vanishes and the loss stays at the "
        "uniform guess, ln 10. A forget bias of 1 (f ~ 0.73) keeps the memory path open; see the "
        "gradient-flow and ablation figures above."
    )


if __name__ == "__main__":
    main()
