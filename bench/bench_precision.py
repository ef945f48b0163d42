"""Training throughput of the char-LSTM in float32 against bfloat16 autocast (`TextConfig.precision`).

Times `models.train.train_step`, the loop's own step, on random batches for a few seconds per
(model size, precision), the two precisions interleaved so that both see the same machine, and
prints characters a second and their ratio. bfloat16 pays off only where the CPU (AVX512-BF16, AMX)
or GPU has bfloat16 units; elsewhere autocast emulates it and is slower.

    .venv/bin/python bench/bench_precision.py                 # one thread, 2 x 128 and 2 x 256
    .venv/bin/python bench/bench_precision.py --threads 2 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from models.char_lstm import CharLSTM
from models.train import train_step

SIZES = [(128, 64, 30), (256, 64, 30)]  # (hidden, batch, seq_length); 2 layers, vocabulary 80


def chars_per_second(hidden: int, batch: int, seq: int, bfloat16: bool, seconds: float) -> float:
    torch.manual_seed(0)
    model = CharLSTM(80, 64, hidden, 2)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    inputs, targets = torch.randint(0, 80, (batch, seq)), torch.randint(0, 80, (batch, seq))
    for _ in range(3):  # warm-up: oneDNN picks its kernels on the first calls
        train_step(model, optimizer, inputs, targets, 5.0, False, autocast=bfloat16)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        train_step(model, optimizer, inputs, targets, 5.0, False, autocast=bfloat16)
        steps += 1
    return steps * batch * seq / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {load}")
    print(f"  {'size':<14} {'float32 chars/s':>16} {'bfloat16 chars/s':>17} {'ratio':>6}")
    for hidden, batch, seq in SIZES:
        for _ in range(args.rounds):
            fp32 = chars_per_second(hidden, batch, seq, False, args.seconds)
            bf16 = chars_per_second(hidden, batch, seq, True, args.seconds)
            print(f"  2 x {hidden:<10} {fp32:16,.0f} {bf16:17,.0f} {bf16 / fp32:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
