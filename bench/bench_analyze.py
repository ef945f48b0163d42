"""`POST /analyze` over 2,000 characters against one forward pass of the same model in this process.

Starts its own `rnnlab serve` (bench_generate's), trains a char-LSTM through `POST /train` on the
built-in corpus (or measures `--url` + `--checkpoint-id` of a running server), downloads the
checkpoint, then measures in one run, interleaved round by round:

    forward        `model(ids)` on the 2,000 characters under torch.inference_mode(), one thread,
                   in this process: the floor, what any X-ray must at least compute
    trace          `models.xray.trace.trace(model, ids)` in this process, one thread: the X-ray's
                   own pass (the native C++ layer where `python -m models.native` has built it)
    trace pytorch  the same with `native=False`: the fused kernel, then the gates recomputed
    analyze all    `POST /analyze` with every unit of every layer (i, f, g, o, c, h per unit and
                   position, surprisal, entropy, top 3): wall time at the client, JSON parsed
    analyze 8      the same with `units` = 0..7 (of both layers)
    analyze 1      one unit of the last layer: the dashboard's request
    base64 all     every unit with `"encoding": "base64"`: the JSON parsed and every array decoded
                   into numpy (np.frombuffer), as a client would
    base64 1       the dashboard's one unit, base64
    npz all        every unit with `"encoding": "npz"`: np.load of the answer, `answer.json` parsed and
                   every array read out of the zip, as a client would
    npz 1          the dashboard's one unit, npz
    server         the service's own `timings.generate_ms` of the all-units and one-unit requests
                   (json, base64 and npz): the trace and the lists or arrays it answers, before they
                   are serialised

The ratio printed is the median request time over the median forward time. Target: <= 3x (every
unit: with a packed encoding, base64 or npz).

    .venv/bin/python bench/bench_analyze.py [--train-steps 50] [--rounds 15] [--corpus PATH]
    .venv/bin/python bench/bench_analyze.py --url http://127.0.0.1:8000 --token T --checkpoint-id 3
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import torch

from bench_generate import (  # bench/ is on sys.path
    AUTH,
    load_average,
    serving,
    train,
)
from corpus import add_corpus_argument, load_bench_corpus
from models.checkpoint import load_model, load_vocabulary
from models.native import load as load_native
from models.xray.trace import trace

CHARACTERS = 2_000


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def measure(api: httpx.Client, checkpoint_id: int, corpus: str, rounds: int) -> None:
    ckpt = torch.load(io.BytesIO(api.get(f"/checkpoints/{checkpoint_id}/file").content), weights_only=True)
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None, "a text checkpoint"
    known = set(vocab.chars)
    text = "".join(ch for ch in corpus if ch in known)[:CHARACTERS]
    assert len(text) == CHARACTERS, "the corpus is too short"
    ids = vocab.encode(text)[None]
    arch = ckpt["architecture"]
    print(f"model: {arch['num_layers']} x {arch['hidden_size']} char-LSTM, {CHARACTERS:,} characters")

    def forward() -> None:
        with torch.inference_mode():
            model(ids)

    def analyze(
        units: list[int] | None, layers: list[int] | None = None, encoding: str = "json"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"checkpoint_id": checkpoint_id, "text": text, "top": 3, "encoding": encoding}
        if units is not None:
            body["units"] = units
        if layers is not None:
            body["layers"] = layers
        response = api.post("/analyze", json=body)
        response.raise_for_status()
        if encoding == "npz":  # what a client does: every member read into an array
            with np.load(io.BytesIO(response.content)) as members:
                answer = json.loads(members["answer.json"])
                answer["members"] = {name: members[name] for name in members.files if name != "answer.json"}
            return answer
        answer = response.json()
        if encoding == "base64":  # what a client does next: every string into an array
            dtype, shapes = answer["arrays"]["dtype"], answer["arrays"]["shapes"]
            for layer in answer["layers"]:
                for name, packed in layer["signals"].items():
                    raw = base64.b64decode(packed)
                    layer["signals"][name] = np.frombuffer(raw, dtype).reshape(shapes["signals"])
        return answer

    analyze(None)  # load the checkpoint into the server's cache
    print(f"native trace layer: {'built' if load_native() is not None else 'not built (PyTorch trace)'}")
    rows: dict[str, list[float]] = {"forward": [], "trace": [], "trace pytorch": []}
    rows |= {"analyze all": [], "analyze 8": [], "analyze 1": []}
    rows |= {"base64 all": [], "base64 1": [], "npz all": [], "npz 1": []}
    rows |= {"server all": [], "server 1": [], "server b64 all": [], "server b64 1": []}
    rows |= {"server npz all": [], "server npz 1": []}
    last_layer = arch["num_layers"] - 1
    for _ in range(rounds):
        rows["forward"].append(timed(forward)[0])
        rows["trace"].append(timed(lambda: trace(model, ids))[0])
        rows["trace pytorch"].append(timed(lambda: trace(model, ids, native=False))[0])
        ms, body = timed(lambda: analyze(None))
        rows["analyze all"].append(ms)
        rows["server all"].append(body["timings"]["generate_ms"])
        rows["analyze 8"].append(timed(lambda: analyze(list(range(8))))[0])
        ms, body = timed(lambda: analyze([0], [last_layer]))
        rows["analyze 1"].append(ms)
        rows["server 1"].append(body["timings"]["generate_ms"])
        rows["forward"].append(timed(forward)[0])
        for encoding, short in (("base64", "b64"), ("npz", "npz")):
            ms, body = timed(lambda encoding=encoding: analyze(None, encoding=encoding))
            rows[f"{encoding} all"].append(ms)
            rows[f"server {short} all"].append(body["timings"]["generate_ms"])
            ms, body = timed(lambda encoding=encoding: analyze([0], [last_layer], encoding=encoding))
            rows[f"{encoding} 1"].append(ms)
            rows[f"server {short} 1"].append(body["timings"]["generate_ms"])
        rows["forward"].append(timed(forward)[0])
    everything = {"checkpoint_id": checkpoint_id, "text": text, "top": 3}
    size = len(api.post("/analyze", json=everything).content)
    packed_size = len(api.post("/analyze", json=everything | {"encoding": "base64"}).content)
    npz_size = len(api.post("/analyze", json=everything | {"encoding": "npz"}).content)
    floor = statistics.median(rows["forward"])
    print(
        f"all-units response: {size / 1e6:.1f} MB of JSON, {packed_size / 1e6:.1f} MB base64, "
        f"{npz_size / 1e6:.1f} MB npz"
    )
    print(f"{'':14} {'median ms':>10} {'x forward':>10}")
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:14} {median:10.1f} {median / floor:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-steps", type=int, default=50, help="steps of the 2 x 128 model to measure")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--url", help="a running server instead of one of its own")
    parser.add_argument("--token", default=os.environ.get("RNNLAB_TOKEN"), help="its API token")
    parser.add_argument("--checkpoint-id", type=int, help="with --url: the text checkpoint to measure")
    add_corpus_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = load_bench_corpus(args.corpus)
    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    if args.url:
        if args.checkpoint_id is None:
            parser.error("--url needs --checkpoint-id")
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        with httpx.Client(base_url=args.url, headers=headers, timeout=300) as api:
            measure(api, args.checkpoint_id, corpus, args.rounds)
        return
    with (
        serving() as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=300) as api,
    ):
        job = train(api, args.train_steps)
        measure(api, job["latest_checkpoint_id"], corpus, args.rounds)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
