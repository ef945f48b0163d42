"""Generation from the containerised API against `rnnlab serve` on the bare machine, side by side in one run.

    ./run compose-test --bench        (builds and starts the compose stack, then runs this against it)
    .venv/bin/python bench/bench_container.py --url http://127.0.0.1:28000 --token T [--rounds 10]

`--url` is a running API (the compose stack's, with the rate limit lifted as bench_generate's serve
lifts it) and its token. This script starts its own `rnnlab serve` beside it (bench_generate's:
SQLite, filesystem broker, the same token), trains the same 2 x 128 char-LSTM on each through
`POST /train` (bench_generate's recipe: same config, same seed, same torch), then measures, round by
round and interleaved container, bare, container, bare (the machine's speed drifts within minutes):

    single stream   one `GET /generate` of 2,000 characters
    C clients       C = 1 and 32 clients, each sending requests of 200 characters back to back over its
                    own keep-alive connection (bench_generate.clients): aggregate characters/s

Printed: each side's median per row and container / bare. Target: at least 0.9x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import httpx

import bench_generate  # bench/ is on sys.path
from bench_generate import SEED_TEXT, clients, load_average, serving, train
from http_load import run_client


def single_stream(api: httpx.Client, checkpoint_id: int) -> float:
    params = {"checkpoint_id": checkpoint_id, "prompt": SEED_TEXT, "length": 2000, "random_seed": 1}
    started = time.perf_counter()
    api.get("/generate", params=params).raise_for_status()
    return 2000 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the containerised API, e.g. http://127.0.0.1:28000")
    parser.add_argument("--token", required=True, help="its bearer token (the bare serve gets the same)")
    parser.add_argument(
        "--train-steps", type=int, default=100, help="steps of the 2 x 128 model on each side"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every row")
    parser.add_argument("--requests", type=int, default=5, help="requests per client in a C-client row")
    args = parser.parse_args()
    # One token for both sides: bench_generate's clients and its serve read these module globals.
    bench_generate.TOKEN = args.token
    bench_generate.AUTH = {"Authorization": f"Bearer {args.token}"}

    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    container_port = int(args.url.rstrip("/").rsplit(":", 1)[1])
    with serving() as bare_port:
        sides: dict[str, tuple[httpx.Client, int, int]] = {}
        for name, port in (("container", container_port), ("bare", bare_port)):
            api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bench_generate.AUTH, timeout=300)
            started = time.perf_counter()
            checkpoint_id = train(api, args.train_steps)["latest_checkpoint_id"]
            print(
                f"{name}: trained 2x128 for {args.train_steps} steps in {time.perf_counter() - started:.0f} s"
            )
            api.get("/generate", params={"checkpoint_id": checkpoint_id, "length": 50}).raise_for_status()
            sides[name] = (api, port, checkpoint_id)

        rows: dict[str, Callable[[httpx.Client, int, int], float]] = {
            "single stream, 2,000 chars": lambda api, _port, ckpt: single_stream(api, ckpt),
            "1 client x 200": lambda _api, port, ckpt: run_client(clients(port, ckpt, 1, args.requests, 200))[
                0
            ],
            "32 clients x 200": lambda _api, port, ckpt: run_client(
                clients(port, ckpt, 32, args.requests, 200)
            )[0],
        }
        print(f"\n{'chars/s (median of rounds)':30s} {'container':>10s} {'bare':>10s}   container / bare")
        for row, measure in rows.items():
            rates: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, (api, port, ckpt) in sides.items():
                    rates[name].append(measure(api, port, ckpt))
            container, bare = (statistics.median(rates[name]) for name in ("container", "bare"))
            print(f"{row:30s} {container:10.0f} {bare:10.0f}   {container / bare:.2f}x")
        for api, _, _ in sides.values():
            api.close()
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
