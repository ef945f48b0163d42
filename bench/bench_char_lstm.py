"""Char-LSTM training throughput (characters/s) against two common baselines, and its GFLOP/s.

Workload: the default TextConfig (2 layers x 128, embedding 64, seq_length 30, batch 64, RMSprop,
clip 5) on Grimms' Fairy Tales, each step being `models.train.train_step` (forward, loss, backward,
clip, optimizer step) on a batch from `TextData.train_batch`, exactly what `train` runs.

    ours        embedding -> nn.LSTM (fused kernel) -> linear        (models/char_lstm.py)
    one-hot     one_hot(ids) -> nn.LSTM -> linear                    (the common student recipe)
    course      one_hot(ids), hand-written cell with separate W_gx, W_gh, W_ix, ... matrices,
                a Python loop over x[:, t] and the output layer applied at every step

All three run in one process, interleaved, after a warm-up; each figure is the median of the
repeats, so drift in machine load hits all alike. Targets: >= 1.3x one-hot, >= 2x course.

GFLOP/s counts matmul FLOPs only: forward 2 * chars * sum(4H(in + H) over layers + H*V), and
forward + backward = 3x forward. The reference is this machine running the same matmuls (every
forward shape and its two backward products) back to back with nothing else; target >= 60% of it.

    .venv/bin/python bench/bench_char_lstm.py [--threads 1] [--repeats 5] [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from corpus import add_corpus_argument, load_bench_corpus
from models.config import TextConfig
from models.data import TextData
from models.registry import architecture_for, build_model
from models.train import make_optimizer, train_step


class OneHotLSTM(nn.Module):
    """The common student recipe: one-hot characters straight into nn.LSTM, a linear head."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.lstm = nn.LSTM(vocab_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs: torch.Tensor, state=None):
        x = F.one_hot(inputs, self.vocab_size).float()  # (B, T, V)
        out, state = self.lstm(x, state)  # (B, T, H)
        return self.head(out), state  # (B, T, V)


class CourseCell(nn.Module):
    """The course's LSTM cell: one matrix per gate and input, eight matmuls per step."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(hidden_size)

        def p(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.W_gx, self.W_gh, self.b_g = (
            p(input_size, hidden_size),
            p(hidden_size, hidden_size),
            p(hidden_size),
        )
        self.W_ix, self.W_ih, self.b_i = (
            p(input_size, hidden_size),
            p(hidden_size, hidden_size),
            p(hidden_size),
        )
        self.W_fx, self.W_fh, self.b_f = (
            p(input_size, hidden_size),
            p(hidden_size, hidden_size),
            p(hidden_size),
        )
        self.W_ox, self.W_oh, self.b_o = (
            p(input_size, hidden_size),
            p(hidden_size, hidden_size),
            p(hidden_size),
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.tanh(x @ self.W_gx + h @ self.W_gh + self.b_g)
        i = torch.sigmoid(x @ self.W_ix + h @ self.W_ih + self.b_i)
        f = torch.sigmoid(x @ self.W_fx + h @ self.W_fh + self.b_f)
        o = torch.sigmoid(x @ self.W_ox + h @ self.W_oh + self.b_o)
        c = g * i + c * f
        h = torch.tanh(c) * o
        return h, c


class CourseLSTM(nn.Module):
    """Stacked course cells over one-hot input, iterating x[:, t], output layer at every step."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        sizes = [vocab_size] + [hidden_size] * (num_layers - 1)
        self.cells = nn.ModuleList(CourseCell(n, hidden_size) for n in sizes)
        bound = 1.0 / math.sqrt(hidden_size)
        self.W_ph = nn.Parameter(torch.empty(hidden_size, vocab_size).uniform_(-bound, bound))
        self.b_p = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, inputs: torch.Tensor, state=None):
        x = F.one_hot(inputs, self.vocab_size).float()  # (B, T, V)
        B, T, _ = x.shape
        h = [x.new_zeros(B, self.hidden_size) for _ in self.cells]
        c = [x.new_zeros(B, self.hidden_size) for _ in self.cells]
        outputs = []
        for t in range(T):
            layer_input = x[:, t]  # (B, V)
            for k, cell in enumerate(self.cells):
                h[k], c[k] = cell(layer_input, h[k], c[k])
                layer_input = h[k]
            outputs.append(layer_input @ self.W_ph + self.b_p)  # (B, V)
        return torch.stack(outputs, dim=1), (h, c)  # (B, T, V)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], n: int, device: torch.device) -> float:
    """Seconds for n calls, with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return time.perf_counter() - start


def matmul_shapes(config: TextConfig, vocab_size: int) -> list[tuple[int, int, int, int]]:
    """(count, m, k, n) of the forward matmuls of one step: input projections, recurrences, head."""
    B, T, E, H, L = (
        config.batch_size,
        config.seq_length,
        config.embedding_size,
        config.hidden_size,
        config.num_layers,
    )
    shapes = []
    for layer in range(L):
        in_size = E if layer == 0 else H
        shapes.append((1, B * T, in_size, 4 * H))  # W_ih x(t) for all t at once
        shapes.append((T, B, H, 4 * H))  # W_hh h(t-1), one per step
    shapes.append((1, B * T, H, vocab_size))  # head
    return shapes


def reference_matmul_gflops(shapes, device: torch.device, repeats: int) -> tuple[float, float]:
    """GFLOP/s of the step's matmuls alone (forward + both backward products per shape), and of a
    1024^3 matmul, for comparison."""
    work = []
    for count, m, k, n in shapes:
        x = torch.randn(m, k, device=device)  # (m, k) activations
        w = torch.randn(k, n, device=device)  # (k, n) weights
        dy = torch.randn(m, n, device=device)  # (m, n) output gradient
        work.append((count, x, w, dy))
    flops = sum(count * 3 * 2 * m * k * n for count, m, k, n in shapes)

    def run() -> None:
        for count, x, w, dy in work:
            for _ in range(count):
                torch.mm(x, w)  # forward
                torch.mm(dy, w.t())  # grad of the input
                torch.mm(x.t(), dy)  # grad of the weight

    big = torch.randn(1024, 1024, device=device)
    timed(run, 3, device)
    timed(lambda: big @ big, 3, device)
    step_s = statistics.median(timed(run, 3, device) / 3 for _ in range(repeats))
    big_s = statistics.median(timed(lambda: big @ big, 5, device) / 5 for _ in range(repeats))
    return flops / step_s / 1e9, 2 * 1024**3 / big_s / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # One thread by default, as bench_cells.py: on a shared machine more threads mostly measure the
    # neighbours (2 threads under load gave 5x spreads between repeats).
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, the same for all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed repeat")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_corpus_argument(parser)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = TextConfig(device=args.device)  # the defaults: 2 x 128, seq 30, batch 64
    data = TextData(load_bench_corpus(args.corpus), config.val_fraction)
    V, H, L = len(data.vocab), config.hidden_size, config.num_layers
    models = {
        "ours": build_model(architecture_for(config, V)),
        "one-hot": OneHotLSTM(V, H, L),
        "course": CourseLSTM(V, H, L),
    }

    steps = {}
    for name, model in models.items():
        model.to(device).train()
        optimizer = make_optimizer(config, model.parameters())
        generator = torch.Generator().manual_seed(0)

        def step(model=model, optimizer=optimizer, generator=generator) -> None:
            inputs, targets = data.train_batch(config.batch_size, config.seq_length, generator, device)
            train_step(model, optimizer, inputs, targets, config.max_norm, last_step_only=False)

        steps[name] = step
    for step in steps.values():  # warm-up: allocator, thread pool, lazy inits
        timed(step, 3, device)
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            seconds[name].append(timed(step, args.steps, device) / args.steps)

    chars_per_step = config.batch_size * config.seq_length
    rate = {name: chars_per_step / statistics.median(s) for name, s in seconds.items()}
    shapes = matmul_shapes(config, V)
    step_flops = 3 * sum(count * 2 * m * k * n for count, m, k, n in shapes)  # forward + backward
    ours_gflops = step_flops * rate["ours"] / chars_per_step / 1e9
    ref_gflops, big_gflops = reference_matmul_gflops(shapes, device, args.repeats)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} CPU thread(s)"
    print(f"device {device} ({name}), torch {torch.__version__}")
    shape = (
        f"{L} x {H}, embedding {config.embedding_size}, seq {config.seq_length}, batch {config.batch_size}"
    )
    print(f"TextConfig defaults: {shape}, vocab {V}; median of {args.repeats} x {args.steps} steps")
    for model_name, r in rate.items():
        spread = [chars_per_step / s for s in seconds[model_name]]
        print(f"  {model_name:8s} {r:10.0f} chars/s   (min {min(spread):.0f}, max {max(spread):.0f})")
    print(f"speed-up vs one-hot nn.LSTM: {rate['ours'] / rate['one-hot']:.2f}x (target >= 1.3x)")
    print(f"speed-up vs course loop:     {rate['ours'] / rate['course']:.2f}x (target >= 2x)")
    print(f"ours: {step_flops / 1e9:.2f} GFLOP per step (matmuls, fwd+bwd) -> {ours_gflops:.1f} GFLOP/s")
    share = ours_gflops / ref_gflops
    print(f"same matmuls alone: {ref_gflops:.1f} GFLOP/s -> ours at {share:.0%} (target >= 60%)")
    print(f"1024^3 matmul: {big_gflops:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
