"""Training-step throughput of the hand-written RNN/LSTM against nn.RNN/nn.LSTM of the same size.

The workload is one palindrome training step: one-hot digits (B, T, 10), logits for every step, a
cross-entropy loss on the last step, backward, gradient clipping, RMSprop. Both models of a pair run
side by side in one process, interleaved, after a warm-up, and each figure is the median over repeats,
so drift in machine load hits both alike. Target: hand-written >= 0.9x the PyTorch module.
On a shared machine the wall-clock figures move with other processes' load; the CPU-time figures
(this process's CPU seconds per step) are the steadier comparison.

    .venv/bin/python bench/bench_cells.py [--threads 1] [--repeats 21] [--steps 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from models.lstm import LSTM
from models.rnn import RNN


class TorchReference(nn.Module):
    """nn.RNN / nn.LSTM plus a Linear head over every step, the same interface as the hand-written ones."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM}[kind]
        self.rnn = rnn_class(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, object]:
        out, state = self.rnn(inputs)  # (B, T, H)
        return self.head(out), state  # (B, T, C)


def make_step(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)

    def step() -> None:
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits[:, -1], targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()

    return step


def time_steps(step, n: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) for n steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--length", type=int, default=20, help="time steps T")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, the same for all")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=5, help="training steps per model per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    B, T, H, D, C = args.batch_size, args.length, args.hidden_size, 10, 10
    digits = torch.randint(0, 10, (B, T), device=device)
    inputs = F.one_hot(digits, D).float()  # (B, T, 10)
    targets = digits[:, 0]

    pairs = {
        "rnn": (RNN(D, H, C), TorchReference("rnn", D, H, C)),
        "lstm": (LSTM(D, H, C), TorchReference("lstm", D, H, C)),
    }
    steps = {
        (kind, which): make_step(model.to(device), inputs, targets)
        for kind, models in pairs.items()
        for which, model in zip(("hand", "torch"), models, strict=True)
    }
    for step in steps.values():  # warm-up: allocator, thread pool, lazy inits
        for _ in range(3):
            step()
    # Short blocks, many rounds, models interleaved: load from other processes hits all alike.
    walls: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    cpus: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key, step in steps.items():
            wall, cpu = time_steps(step, args.steps, device)
            walls[key].append(args.steps / wall)
            cpus[key].append(args.steps / cpu)

    print(
        f"device={device} threads={args.threads} B={B} T={T} H={H} rounds={args.repeats}x{args.steps} steps"
    )
    print(
        "median steps/s by wall clock" + (" and by CPU time of this process" if device.type == "cpu" else "")
    )
    for kind in pairs:
        for label, table in (("wall", walls), ("cpu", cpus)):
            if label == "cpu" and device.type != "cpu":
                continue  # CPU time says nothing about GPU work
            hand = statistics.median(table[(kind, "hand")])
            ref = statistics.median(table[(kind, "torch")])
            name = f"nn.{kind.upper()}"
            print(
                f"{kind:5s} {label:4s} hand-written {hand:7.1f}  {name:8s} {ref:7.1f}  ratio {hand / ref:.2f}"
            )


if __name__ == "__main__":
    main()
