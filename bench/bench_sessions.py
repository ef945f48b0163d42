"""Session generation against `/generate`, side by side in one run against one `rnnlab serve`.

Starts its own `rnnlab serve` (API + worker, SQLite, filesystem broker) on a temporary data dir,
trains a 2 x 128 char-LSTM through `POST /train` (bench/bench_generate.py's recipe), then, for C = 1
and 32 clients each sending requests of 200 characters (`--length`) back to back over its own keep-alive
connection (bench/http_load.py):

    generate   `POST /generate` continuing "The " (primed once, then a prefix-cache hit)
    session    `POST /sessions/{id}/generate` on a session of its own per client (made with the prompt
               "The "): the same decode batch, joined with the stored state; each request starts from
               the record the server committed last (app/services/session_cache.py) and writes its
               new state (one transaction, committed with the other writes waiting:
               app/services/session_writer.py), on disk within a second (`--session-fsync everysec`,
               the default) or before the answer (`always`)

Each row is measured generate, session, generate again (this machine's speed drifts within minutes;
the ratio divides by the mean of the two generate runs). Printed: aggregate characters/s, p50 and p99
latency, and session / generate. Target: within 10 %.

With `--database-url` (an empty PostgreSQL database, e.g. made with `createdb`; `rnnlab serve` migrates
it) the service keeps its rows there instead of in SQLite: what a session's read and commit cost there.

    .venv/bin/python bench/bench_sessions.py [--train-steps 100] [--rounds 10] [--length 200]
        [--session-fsync everysec|always]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/rnnlab_bench]
"""

from __future__ import annotations

import argparse
import os
import time

import httpx
import torch
from sqlalchemy.engine import make_url

from bench_generate import (
    AUTH,
    load_average,
    percentile,
    run_clients,
    serving,
    train,
)
from http_load import Connection, run_client  # bench/ is on sys.path when a bench script runs

PROMPT = "The "


async def load(
    port: int, count: int, rounds: int, length: int, path_of: list[str], body_of: dict[str, object]
) -> tuple[float, list[float]]:
    """`count` clients, client i POSTing `body_of | random_seed` to `path_of[i]` `rounds` times:
    (aggregate chars/s, latencies in s)."""
    latencies: list[float] = []

    async def request(index: int, r: int, connection: Connection) -> None:
        start = time.perf_counter()
        body = await connection.post_json(path_of[index], body_of | {"random_seed": index * 1000 + r})
        latencies.append(time.perf_counter() - start)
        assert len(body["text"]) == length, f"{len(body['text'])} characters, not {length}"

    wall = await run_clients(port, count, rounds, request)
    return count * rounds * length / wall, latencies


def compare(api: httpx.Client, port: int, checkpoint_id: int, rounds: int, length: int) -> None:
    print(f"\nclients x {length}   kind       chars/s    p50 s    p99 s")
    for count in (1, 32):
        sessions = [
            api.post("/sessions", json={"checkpoint_id": checkpoint_id, "prompt": PROMPT})
            for _ in range(count)
        ]
        ids = [s.raise_for_status().json()["id"] for s in sessions]
        generate_body: dict[str, object] = {
            "checkpoint_id": checkpoint_id,
            "prompt": PROMPT,
            "length": length,
        }
        runs = [
            ("generate", ["/generate"] * count, generate_body),
            ("session", [f"/sessions/{i}/generate" for i in ids], {"length": length}),
            ("generate", ["/generate"] * count, generate_body),
        ]
        rates = {}
        for kind, paths, body in runs:
            rate, latencies = run_client(load(port, count, rounds, length, paths, body))
            rates.setdefault(kind, []).append(rate)
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(f"{count:7d}         {kind:9s} {rate:8.0f}  {p50:7.3f}  {p99:7.3f}")
        generate_rate = sum(rates["generate"]) / 2
        print(f"  {count} clients: session / generate = {rates['session'][0] / generate_rate:.3f}")
        for session_id in ids:
            api.delete(f"/sessions/{session_id}").raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-steps", type=int, default=100, help="steps of the 2 x 128 model to serve")
    parser.add_argument("--rounds", type=int, default=10, help="requests per client")
    parser.add_argument("--length", type=int, default=200, help="characters per request")
    parser.add_argument("--database-url", default="", help="the service's database (default: SQLite)")
    parser.add_argument(
        "--session-fsync", choices=["everysec", "always"], default="everysec", help="RNNLAB_SESSION_FSYNC"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    print(f"database: {make_url(args.database_url).render_as_string() if args.database_url else 'SQLite'}")
    print(f"session writes on disk: {args.session_fsync} (RNNLAB_SESSION_FSYNC)")
    with (
        serving(args.database_url, {"RNNLAB_SESSION_FSYNC": args.session_fsync}) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=300) as api,
    ):
        job = train(api, args.train_steps)
        checkpoint_id = job["latest_checkpoint_id"]
        print(f"trained 2x128 for {args.train_steps} steps")
        api.get("/generate", params={"checkpoint_id": checkpoint_id, "length": 50}).raise_for_status()
        compare(api, port, checkpoint_id, args.rounds, args.length)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
