"""Generation served over HTTP by `rnnlab serve`: the decode engine against a naive loop, side by side.

Starts its own `rnnlab serve` (API + worker, SQLite, filesystem broker) on a temporary data dir,
trains a 2 x 128 char-LSTM through `POST /train` on the built-in corpus, then measures in one run:

    naive          one `model(x, state)` call per character under torch.no_grad(), torch.multinomial
                   sampling, one thread, in this process, on the same checkpoint (2,000 characters); measured
                   again just before and after every client row below, whose "x naive" uses the
                   mean of those two (this machine's speed drifts within minutes)
    single stream  `GET /generate`, 2,000 characters, one client
    C clients      C = 1, 8, 32 clients, each sending requests of 200 characters back to back over its
                   own keep-alive connection (bench/http_load.py, a lean client: the client shares the
                   2 cores with the service): aggregate characters/s, p50 and p99 latency
    streaming      1 and 32 clients on `GET /generate/stream` (server-sent events), 200 characters each:
                   aggregate characters/s and the time from a request to its first character
    floor          the engine alone in this process (native step when built, one thread): 32 requests
                   x 200 characters in one batch, against the 1-client p99 (the ratio's lower bound)
    training       one client, 300 characters: latency when idle, then while a training job runs

Every request uses temperature 1 and its own random_seed. Every request continues "The ", so after the
first one its join finds that seed text primed (the engine's prefix cache); `--unique-seed-texts` gives
each client request a seed text of its own instead, the case where no prompt repeats.

Targets on the 2-core development CPU: single stream >= 5x naive; 32 clients >= 20x naive in
aggregate with p99 <= 4x one client's latency; single-client p99 while training <= 2.5x idle.

    .venv/bin/python bench/bench_generate.py [--train-steps 300] [--rounds 10] [--unique-seed-texts]
        [--url http://127.0.0.1:PORT --token TOKEN]   (a running API, e.g. a container, instead of serve)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import torch

from http_load import Connection, run_client  # bench/ is on sys.path when a bench script runs
from models.char_lstm import CharLSTM
from models.checkpoint import load_model, load_vocabulary
from models.decode.batch import decode
from models.decode.fused import FusedCharLSTM
from models.decode.stream import Stream

T = TypeVar("T")
# One client request of `run_clients`: (client index, round, its connection).
Request = Callable[[int, int, Connection], Awaitable[None]]
REPO = Path(__file__).resolve().parent.parent
SEED_TEXT = "The "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


TOKEN = secrets.token_urlsafe(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out waiting for {what}")


def stop_serve(serve: subprocess.Popen[bytes]) -> None:
    """SIGTERM `rnnlab serve` and the worker it supervises (its process group); SIGKILL after 90 s."""
    os.killpg(serve.pid, signal.SIGTERM)
    try:
        serve.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(serve.pid, signal.SIGKILL)


def start_serve(
    data_dir: Path, port: int, database_url: str = "", settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`rnnlab serve` on `data_dir` (its SQLite file there, or `database_url`), ready on `port`;
    `settings`: more RNNLAB_ variables for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNLAB_")}
    env |= {"RNNLAB_DATA_DIR": str(data_dir), "RNNLAB_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env |= settings or {}
    if database_url:
        env["RNNLAB_DATABASE_URL"] = database_url
    # This measures the engine, not the per-token rate limit (600/min by default), so lift it.
    env |= {
        "RNNLAB_API_TOKENS": TOKEN,
        "RNNLAB_RATE_LIMIT_PER_MINUTE": "1e9",
        "RNNLAB_RATE_LIMIT_BURST": "100000",
    }
    log = (data_dir / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"rnnlab serve exited: {(data_dir / 'serve.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 180, "rnnlab serve to be ready")
    return proc


@contextmanager
def serving(database_url: str = "", settings: dict[str, str] | None = None) -> Iterator[int]:
    """`rnnlab serve` on a free port over a temporary data dir (start_serve), stopped on the way out:
    its port."""
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        port = free_port()
        serve = start_serve(Path(tmp), port, database_url, settings)
        try:
            yield port
        finally:
            stop_serve(serve)


def train(api: httpx.Client, steps: int) -> dict[str, Any]:
    body = {"task": "text", "hidden_size": 128, "num_layers": 2, "train_steps": steps}
    body |= {"checkpoint_every": steps, "sample_every": steps, "eval_every": steps, "log_every": 50}
    job = api.post("/train", json=body).json()

    def finished() -> dict[str, Any] | None:
        state: dict[str, Any] = api.get(f"/jobs/{job['id']}").json()
        return state if state["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(finished, 1800, "the training job")
    if job["status"] != "succeeded":
        raise RuntimeError(f"training {job['status']}: {job.get('error')}")
    return job


def naive_chars_per_s(ckpt: dict[str, Any], length: int) -> float:
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        logits, state = model(vocab.encode(SEED_TEXT)[None])
        for _ in range(length):
            probs = torch.softmax(logits[0, -1], dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)
            logits, state = model(next_id[None], state)
    return length / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_clients(port: int, count: int, rounds: int, request: Request) -> float:
    """`count` clients, each on a connection opened beforehand, awaiting `request(client index, round,
    connection)` `rounds` times back to back: the seconds from the first request to the last answer."""
    connections = [await Connection.open(port, AUTH) for _ in range(count)]

    async def client(index: int, connection: Connection) -> None:
        for r in range(rounds):
            await request(index, r, connection)

    start = time.perf_counter()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    wall = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    return wall


async def clients(
    port: int, checkpoint_id: int, count: int, rounds: int, length: int, unique_seeds: bool = False
) -> tuple[float, list[float], list[float]]:
    """`count` clients sending `rounds` requests each (`run_clients`):
    (aggregate chars/s, latencies in s, the service's own generate_ms in s)."""
    latencies: list[float] = []
    in_engine: list[float] = []

    async def request(index: int, r: int, connection: Connection) -> None:
        seed = f"{SEED_TEXT}{index * 1000 + r} " if unique_seeds else SEED_TEXT
        params = {"checkpoint_id": checkpoint_id, "prompt": seed, "length": length}
        params["random_seed"] = index * 1000 + r
        start = time.perf_counter()
        body = await connection.get_json("/generate", params)
        latencies.append(time.perf_counter() - start)
        in_engine.append(body["timings"]["generate_ms"] / 1000)

    wall = await run_clients(port, count, rounds, request)
    return count * rounds * length / wall, latencies, in_engine


async def streaming_clients(
    port: int, checkpoint_id: int, count: int, rounds: int, length: int
) -> tuple[float, list[float]]:
    """As `clients`, over `GET /generate/stream`: (aggregate chars/s, seconds to the first character)."""
    firsts: list[float] = []

    async def request(index: int, r: int, connection: Connection) -> None:
        params = {"checkpoint_id": checkpoint_id, "prompt": SEED_TEXT, "length": length}
        first, text = await connection.get_events("/generate/stream", params | {"random_seed": index + r})
        assert len(text) == length, f"a stream gave {len(text)} characters, not {length}"
        firsts.append(first)

    wall = await run_clients(port, count, rounds, request)
    return count * rounds * length / wall, firsts


def single_latencies(api: httpx.Client, checkpoint_id: int, samples: int, length: int) -> list[float]:
    latencies = []
    for i in range(samples):
        params = {"checkpoint_id": checkpoint_id, "prompt": SEED_TEXT, "length": length, "random_seed": i}
        start = time.perf_counter()
        api.get("/generate", params=params).raise_for_status()
        latencies.append(time.perf_counter() - start)
    return latencies


def batch_steps(api: httpx.Client) -> tuple[float, float]:
    """(engine steps, streams stepped) so far, from /metrics."""
    values = {}
    for line in api.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("rnnlab_generation_batch_size_count", "rnnlab_generation_batch_size_sum"):
            values[name] = float(value)
    return values["rnnlab_generation_batch_size_count"], values["rnnlab_generation_batch_size_sum"]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def single_stream(api: httpx.Client, checkpoint_id: int, ckpt: dict[str, Any]) -> None:
    """Naive loop vs one stream over HTTP, 2,000 characters, interleaved."""
    # Interleaved, medians of three: drift in the machine's load hits both alike.
    params = {"checkpoint_id": checkpoint_id, "prompt": SEED_TEXT, "length": 2000, "random_seed": 1}
    naives, singles = [], []
    for _ in range(3):
        naives.append(naive_chars_per_s(ckpt, 2000))
        start = time.perf_counter()
        api.get("/generate", params=params).raise_for_status()
        singles.append(2000 / (time.perf_counter() - start))
    naive, single = statistics.median(naives), statistics.median(singles)
    print(f"\nnaive loop (this process, 1 thread)   {naive:7.0f} chars/s   runs: {fmt(naives)}")
    print(f"engine, one stream over HTTP (2,000)  {single:7.0f} chars/s   runs: {fmt(singles)}")
    print(f"  = {single / naive:.1f}x naive")


def batch_floor(ckpt: dict[str, Any], count: int, length: int) -> float:
    """Seconds the decode engine itself takes, in this process with one thread and nothing else
    running, to give `count` requests `length` characters each in one batch (median of three): no
    request of a batch of `count` can be served faster, whatever the HTTP side does."""
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None and isinstance(model, CharLSTM)
    weights = FusedCharLSTM(model)
    times = []
    for attempt in range(3):
        streams = [Stream(SEED_TEXT, length, random_seed=attempt * count + i) for i in range(count)]
        start = time.perf_counter()
        decode(weights, vocab, streams, capacity=count)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def beside_naive(ckpt: dict[str, Any], measure: Callable[[], T]) -> tuple[T, float]:
    """`measure()`'s result, and the naive loop's chars/s measured just before and after it (mean)."""
    before = naive_chars_per_s(ckpt, 2000)
    result = measure()
    return result, (before + naive_chars_per_s(ckpt, 2000)) / 2


def concurrent(
    api: httpx.Client, port: int, checkpoint_id: int, ckpt: dict[str, Any], rounds: int, unique_seeds: bool
) -> None:
    # "engine p50": the service's generate_ms (waiting line to last character); the rest of a
    # request's latency is HTTP, the server's event loop and this client.
    # "x naive" divides by the naive loop measured just before and just after each row (their mean):
    # this machine's speed drifts within minutes, and a ratio must compare like with like.
    print(
        "\nclients x 200   aggregate chars/s   naive   x naive    p50 s    p99 s   engine p50 s   mean batch"
    )
    one_client_p99 = 0.0
    for count in (1, 8, 32):
        steps_before, streams_before = batch_steps(api)
        (rate, latencies, in_engine), naive = beside_naive(
            ckpt,
            lambda count=count: run_client(clients(port, checkpoint_id, count, rounds, 200, unique_seeds)),
        )
        steps, streams = batch_steps(api)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        one_client_p99 = one_client_p99 or p99
        batch, engine_p50 = (streams - streams_before) / (steps - steps_before), percentile(in_engine, 0.5)
        figures = (
            f"{rate:10.0f}  {naive:6.0f}  {rate / naive:6.1f}x  {p50:7.3f}  {p99:7.3f}   {engine_p50:12.3f}"
        )
        print(f"{count:7d}         {figures}   {batch:10.1f}")
    print(f"32-client p99 / 1-client p99: {p99 / one_client_p99:.2f}")
    # What the ratio can reach at best on this machine: a batch of 32 costs the engine far more than a
    # batch of 1 on a CPU (the matmuls grow with the batch), unlike on a GPU.
    floor_32 = batch_floor(ckpt, 32, 200)
    print(
        f"engine alone, 32 x 200 chars in one batch: {floor_32:.3f} s = {floor_32 / one_client_p99:.2f}x "
        "the 1-client p99 over HTTP (the lowest that ratio can be here)"
    )


def streaming(port: int, checkpoint_id: int, ckpt: dict[str, Any], rounds: int) -> None:
    # Continuous batching seen from a client: a stream's first character comes within a step or two of
    # its request, however many streams are already running.
    print("\nSSE clients x 200   aggregate chars/s   naive   x naive   first char p50 s   p99 s")
    for count in (1, 32):
        (rate, firsts), naive = beside_naive(
            ckpt, lambda count=count: run_client(streaming_clients(port, checkpoint_id, count, rounds, 200))
        )
        p50, p99 = percentile(firsts, 0.5), percentile(firsts, 0.99)
        print(
            f"{count:11d}         {rate:10.0f}  {naive:6.0f}   {rate / naive:6.1f}x   {p50:16.4f}   {p99:.4f}"
        )


def while_training(api: httpx.Client, checkpoint_id: int, samples: int) -> None:
    idle = single_latencies(api, checkpoint_id, samples, 300)
    body = {"task": "text", "hidden_size": 128, "num_layers": 2, "train_steps": 1_000_000}
    job = api.post("/train", json=body).json()
    wait_until(lambda: api.get(f"/jobs/{job['id']}").json()["step"] > 0, 300, "training to run")
    busy = single_latencies(api, checkpoint_id, samples, 300)
    api.post(f"/jobs/{job['id']}/cancel")
    idle_p50, idle_p99 = percentile(idle, 0.5), percentile(idle, 0.99)
    busy_p50, busy_p99 = percentile(busy, 0.5), percentile(busy, 0.99)
    print("\none client x 300 chars       p50 s     p99 s")
    print(f"idle                      {idle_p50:8.3f}  {idle_p99:8.3f}")
    print(f"while training            {busy_p50:8.3f}  {busy_p99:8.3f}   p99 {busy_p99 / idle_p99:.2f}x idle")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-steps", type=int, default=300, help="steps of the 2 x 128 model to serve")
    parser.add_argument(
        "--unique-seed-texts",
        action="store_true",
        help='a seed text of its own per client request ("The 31005 "), so no join finds it primed',
    )
    parser.add_argument("--rounds", type=int, default=10, help="requests per client in the C-client runs")
    parser.add_argument("--samples", type=int, default=30, help="single-client requests, idle and training")
    parser.add_argument(
        "--url",
        help="measure this running API (e.g. a container: http://127.0.0.1:8000) instead of "
        "starting `rnnlab serve`; it must lift the rate limit as start_serve does, and have a worker",
    )
    parser.add_argument("--token", help="the bearer token of --url's API")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.url:
        global AUTH
        AUTH = {"Authorization": f"Bearer {args.token}"}

    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        port = int(args.url.rsplit(":", 1)[1].rstrip("/")) if args.url else free_port()
        url = f"http://127.0.0.1:{port}"
        serve = None if args.url else start_serve(Path(tmp), port)
        try:
            with httpx.Client(base_url=url, headers=AUTH, timeout=300) as api:
                started = time.perf_counter()
                job = train(api, args.train_steps)
                checkpoint_id = job["latest_checkpoint_id"]
                print(f"trained 2x128 for {args.train_steps} steps in {time.perf_counter() - started:.0f} s")
                data = api.get(f"/checkpoints/{checkpoint_id}/file").content
                ckpt = torch.load(io.BytesIO(data), weights_only=True)
                api.get("/generate", params={"checkpoint_id": checkpoint_id, "length": 50}).raise_for_status()
                single_stream(api, checkpoint_id, ckpt)
                concurrent(api, port, checkpoint_id, ckpt, args.rounds, args.unique_seed_texts)
                streaming(port, checkpoint_id, ckpt, args.rounds)
                while_training(api, checkpoint_id, args.samples)
        finally:
            if serve is not None:
                stop_serve(serve)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
