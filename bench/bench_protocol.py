"""What the OpenAI protocol, `n`, stop strings and scoring cost, each beside its native counterpart.

Starts its own `rnnlab serve` (as bench_generate.py does), trains a 2 x 128 char-LSTM through the API,
names it, then measures in one run, every pair interleaved (A, B, A, B, A, B; medians) so that the
machine's drift hits both sides alike:

    /v1 vs native   C = 1 and 32 clients x 200 characters: `POST /v1/completions` against `POST /generate`,
                    and streamed (`stream: true` against `POST /generate/stream`): aggregate characters/s
                    and the /v1 overhead (target: at most 5 %)
    n = 4           one request with n = 4 against four requests of n = 1 at once (both 4 streams)
    4 stops         one stream of 2,000 characters with four stop strings that never match, against none;
                    and StopMatcher.push per character against one engine step (stop matching must cost
                    less than the step it follows)
    /score          POST /score of 10,000 characters (one forward pass) against generating 10,000
                    characters one model call at a time (the naive loop of bench_generate.py; target: at
                    least 20x faster), and against the engine's single stream

    .venv/bin/python bench/bench_protocol.py [--train-steps 300] [--rounds 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
import torch

from bench_generate import (
    AUTH,
    load_average,
    naive_chars_per_s,
    run_clients,
    serving,
    train,
)
from http_load import Connection, run_client
from models.decode.stops import StopMatcher

PROMPT = "The "
NEVER = ["\x00a", "\x00b", "\x00c", "\x00d"]  # stop strings no model output contains
# One client request: (its connection, a random seed) -> the text it got.
Request = Callable[[Connection, int], Awaitable[str]]


def interleaved(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Medians of a() and b(), measured alternately."""
    xs, ys = [], []
    for _ in range(repeats):
        xs.append(a())
        ys.append(b())
    return statistics.median(xs), statistics.median(ys)


def chars_per_s(
    port: int, count: int, rounds: int, length: int, request: Callable[[Connection, int], Awaitable[str]]
) -> float:
    """Aggregate characters/s of `count` clients, each sending `rounds` requests back to back."""

    async def one(index: int, r: int, connection: Connection) -> None:
        text = await request(connection, index * 1000 + r)
        assert len(text) == length, f"{len(text)} characters, not {length}"

    wall = run_client(run_clients(port, count, rounds, one))
    return count * rounds * length / wall


def protocol_rows(port: int, model: str, rounds: int, repeats: int) -> None:
    print("\n                     native chars/s   /v1 chars/s   /v1 overhead")
    for streamed in (False, True):
        native, v1 = requests_for(model, streamed)
        for count in (1, 32):
            # As many characters per measurement at 1 client as at 32: a fraction of a second is noise.
            n = rounds * (32 // count)
            a, b = interleaved(
                lambda count=count, native=native, n=n: chars_per_s(port, count, n, 200, native),
                lambda count=count, v1=v1, n=n: chars_per_s(port, count, n, 200, v1),
                repeats,
            )
            label = f"{'SSE ' if streamed else ''}{count} client{'s' if count > 1 else ''}"
            print(f"{label:20s} {a:14.0f}   {b:11.0f}   {(a / b - 1) * 100:+11.1f} %")


def requests_for(model: str, streamed: bool) -> tuple[Request, Request]:
    """The same 200 characters asked natively and through /v1, whole or streamed."""

    async def native(c: Connection, seed: int) -> str:
        body = {"model": model, "prompt": PROMPT, "length": 200, "random_seed": seed}
        if streamed:
            return (await c.post_events("/generate/stream", body))[1]
        return str((await c.post_json("/generate", body))["text"])

    async def v1(c: Connection, seed: int) -> str:
        body = {"model": model, "prompt": PROMPT, "max_tokens": 200, "seed": seed, "stream": streamed}
        if streamed:
            return (await c.post_events("/v1/completions", body))[1]
        return str((await c.post_json("/v1/completions", body))["choices"][0]["text"])

    return native, v1


def n_rows(port: int, model: str, rounds: int, repeats: int) -> None:
    async def n4(c: Connection, seed: int) -> str:
        body = {"model": model, "prompt": PROMPT, "length": 200, "n": 4, "random_seed": seed}
        return "".join(choice["text"] for choice in (await c.post_json("/generate", body))["choices"])

    async def one(c: Connection, seed: int) -> str:
        body = {"model": model, "prompt": PROMPT, "length": 200, "random_seed": seed}
        return str((await c.post_json("/generate", body))["text"])

    a, b = interleaved(
        lambda: chars_per_s(port, 1, rounds, 800, n4), lambda: chars_per_s(port, 4, rounds, 200, one), repeats
    )
    print(
        f"\nn = 4 in one request   {a:8.0f} chars/s;  4 clients of n = 1   {b:8.0f} chars/s   ({a / b:.2f}x)"
    )


def stop_rows(api: httpx.Client, model: str, repeats: int) -> None:
    def stream(stops: list[str]) -> float:
        body = {"model": model, "prompt": PROMPT, "length": 2000, "random_seed": 1, "stop": stops}
        start = time.perf_counter()
        with api.stream("POST", "/generate/stream", json=body) as response:
            for _ in response.iter_lines():
                pass
        return 2000 / (time.perf_counter() - start)

    with_stops, without = interleaved(lambda: stream(NEVER), lambda: stream([]), repeats)
    print(
        f"\none stream x 2,000, four stops {with_stops:8.0f} chars/s;  no stop {without:8.0f}   "
        f"({with_stops / without:.2f}x)"
    )
    matcher = StopMatcher(NEVER)
    text = "Once upon a time there was a king who had three daughters. " * 200
    start = time.perf_counter()
    for char in text:
        matcher.push(char)
    per_char = (time.perf_counter() - start) / len(text)
    step = 1 / without  # one stream: one engine step per character, HTTP included
    print(
        f"StopMatcher.push with 4 stops: {per_char * 1e6:.2f} us a character; one step at batch 1 over "
        f"HTTP: {step * 1e6:.0f} us ({per_char / step * 100:.1f} % of it)"
    )


def score_rows(api: httpx.Client, model: str, repeats: int) -> None:
    text = api.post(
        "/generate", json={"model": model, "prompt": PROMPT, "length": 9_999, "random_seed": 2}
    ).json()["text"]
    text = (PROMPT + text)[:10_000]

    def score() -> float:
        start = time.perf_counter()
        api.post("/score", json={"model": model, "text": text}).raise_for_status()
        return time.perf_counter() - start

    def generate() -> float:
        start = time.perf_counter()
        api.post(
            "/generate", json={"model": model, "prompt": "", "length": 10_000, "random_seed": 3}
        ).raise_for_status()
        return time.perf_counter() - start

    scored, generated = interleaved(score, generate, repeats)
    checkpoint_id = api.get("/models/bench").json()["versions"][-1]["checkpoint_id"]
    ckpt = torch.load(io.BytesIO(api.get(f"/checkpoints/{checkpoint_id}/file").content), weights_only=True)
    naive = 10_000 / naive_chars_per_s(ckpt, 10_000)
    print(
        f"\nPOST /score, 10,000 characters {scored:.3f} s;  generating 10,000 one model call at a time "
        f"{naive:.3f} s ({naive / scored:.1f}x);  with the engine, one stream {generated:.3f} s "
        f"({generated / scored:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6, help="requests per client per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    with (
        serving() as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=300) as api,
    ):
        job = train(api, args.train_steps)
        api.post(
            "/models/bench/versions", json={"checkpoint_id": job["latest_checkpoint_id"]}
        ).raise_for_status()
        api.post("/generate", json={"model": "bench", "length": 50}).raise_for_status()  # load it
        protocol_rows(port, "bench", args.rounds, args.repeats)
        n_rows(port, "bench", args.rounds, args.repeats)
        stop_rows(api, "bench", args.repeats)
        score_rows(api, "bench", args.repeats)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
