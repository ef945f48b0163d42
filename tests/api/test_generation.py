"""Generation served by the decode engine: texts, batching, streaming, disconnects, backpressure.

The API runs in this process (httpx against the ASGI app, or a live uvicorn in a thread where a
client must really disconnect), on SQLite, with a small two-layer text model trained in-process.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.generation.cache import ModelCache
from app.main import create_app
from app.observability import metrics
from models.checkpoint import from_bytes, load_model, load_vocabulary
from models.sample import generate
from tests.conftest import AUTH, TINY_TEXT, free_port, wait_for
from worker.lifecycle import run_job

pytestmark = pytest.mark.slow  # trains a model and steps thousands of characters


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # The reference sampler steps nn.LSTM per character: on a shared machine two threads that
    # wait for each other cost far more than they bring (the engine's own thread is unaffected).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def trained(sqlite_settings: Settings) -> dict[str, Any]:
    """A finished two-layer text job: its id, latest checkpoint id, and that checkpoint as a dict."""
    return train_text(sqlite_settings, {"num_layers": 2, "hidden_size": 32})


@pytest.fixture(scope="module")
def wide(sqlite_settings: Settings) -> dict[str, Any]:
    """A 2 x 512 text model after one training step: slow enough (~0.5 ms a character on the 2-core
    development machine) that a stream of 10,000 characters runs for seconds after its first event."""
    return train_text(sqlite_settings, {"num_layers": 2, "hidden_size": 512, "train_steps": 1})


def train_text(settings: Settings, changes: dict[str, Any]) -> dict[str, Any]:
    with TestClient(create_app(settings), headers=AUTH) as client:
        job = client.post("/train", json=TINY_TEXT | changes).json()
        sessions = sessionmaker_for(settings.resolved_database_url)
        assert run_job(job["id"], sessions=sessions) == "succeeded"
        job = client.get(f"/jobs/{job['id']}").json()
        data = client.get(f"/checkpoints/{job['latest_checkpoint_id']}/file").content
    ckpt = from_bytes(data)
    return {
        "job_id": job["id"],
        "checkpoint_id": job["latest_checkpoint_id"],
        "ckpt": ckpt,
        "model": load_model(ckpt),
        "vocab": load_vocabulary(ckpt),
    }


def expected(trained: dict[str, Any], params: dict[str, Any]) -> str:
    """What models.sample.generate (the path before the engine) gives for the same parameters."""
    return generate(
        trained["model"],
        trained["vocab"],
        params.get("seed", ""),
        params["length"],
        temperature=params.get("temperature", 1.0),
        top_k=params.get("top_k"),
        top_p=params.get("top_p"),
        random_seed=params["random_seed"],
    ).text


def app_with(settings: Settings, **changes: Any) -> FastAPI:
    return create_app(settings.model_copy(update=changes))


def cache_of(app: FastAPI) -> ModelCache:
    cache: ModelCache = app.state.model_cache
    return cache


def sample(name: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


def steps() -> float:
    """Engine steps so far, all engines of this process."""
    return sample("rnnlab_generation_batch_size_count")


def parse_events(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n\n"), body[-100:]
    events = body[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events), body[:300]
    return [json.loads(e.removeprefix("data: ")) for e in events]


def varied_params(trained: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Requests that differ in everything a request can set, seed texts of different lengths."""
    seeds = ["", "T", "The ", "Once upon a time the", "and the"]
    return [
        {
            "checkpoint_id": trained["checkpoint_id"],
            "seed": seeds[i % len(seeds)],
            "length": 10 + 3 * i,
            "temperature": [0, 0.5, 1.0, 1.3][i % 4],
            "top_k": [None, 5, None, 40][i % 4],
            "top_p": [None, None, 0.9, 0.5][(i // 4) % 4],
            "random_seed": 1000 + i,
        }
        for i in range(count)
    ]


def without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


async def _generate_all(app: FastAPI, requests: list[dict[str, Any]], path: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=AUTH, timeout=120
    ) as client:
        return await asyncio.gather(*(client.get(path, params=without_none(p)) for p in requests))


def test_same_text_as_before_alone_and_in_a_batch_of_32(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    app = app_with(sqlite_settings)
    requests = varied_params(trained, 32)
    want = [expected(trained, p) for p in requests]
    alone = [asyncio.run(_generate_all(app, [p], "/generate"))[0] for p in requests[:4]]
    assert [r.json()["text"] for r in alone] == want[:4]
    together = asyncio.run(_generate_all(app, requests, "/generate"))
    assert [r.status_code for r in together] == [200] * 32
    assert [r.json()["text"] for r in together] == want
    assert [r.json()["random_seed"] for r in together] == [p["random_seed"] for p in requests]
    assert sample("rnnlab_generation_batch_size_sum") > steps()  # some steps held many streams


def test_stream_equals_the_generated_text(sqlite_settings: Settings, trained: dict[str, Any]) -> None:
    app = app_with(sqlite_settings)
    requests = varied_params(trained, 8)
    streamed = asyncio.run(_generate_all(app, requests, "/generate/stream"))
    plain = asyncio.run(_generate_all(app, requests, "/generate"))
    for params, response, reference in zip(requests, streamed, plain, strict=True):
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_events(response.text)
        *chunks, last = events
        text = "".join(e["text"] for e in chunks)
        assert text == reference.json()["text"] == expected(trained, params)
        offsets = [0] + [len(e["text"]) for e in chunks]
        assert [e["index"] for e in events] == [sum(offsets[: i + 1]) for i in range(len(events))]
        assert last["finish_reason"] == "length" and last["index"] == params["length"]
        assert last["random_seed"] == params["random_seed"]
        assert last["checkpoint_id"] == trained["checkpoint_id"] and "total_ms" in last["timings"]

    with TestClient(app, headers=AUTH) as client:
        body = {"job_id": trained["job_id"], "seed": "The", "length": 30, "random_seed": 5}
        posted = parse_events(client.post("/generate/stream", json=body).text)
        assert (
            "".join(e.get("text", "") for e in posted) == client.post("/generate", json=body).json()["text"]
        )
        empty = parse_events(client.get("/generate/stream", params=body | {"length": 0}).text)
        assert empty == [empty[0]] and empty[0]["finish_reason"] == "length" and empty[0]["index"] == 0
        assert client.get("/generate", params=body | {"length": 0}).json()["text"] == ""


def test_a_stream_sends_its_first_characters_at_once_then_one_event_per_interval(
    sqlite_settings: Settings, wide: dict[str, Any]
) -> None:
    # The slow model (~0.5 ms a character) and an interval of a second: the first characters go at once,
    # the rest in at most one more event per second and the end.
    params = {"checkpoint_id": wide["checkpoint_id"], "seed": "The ", "length": 2000, "random_seed": 9}
    with TestClient(app_with(sqlite_settings, generation_stream_interval_ms=1000), headers=AUTH) as client:
        started = time.perf_counter()
        *chunks, last = parse_events(client.get("/generate/stream", params=params).text)
        seconds = time.perf_counter() - started
    assert len(chunks[0]["text"]) < 2000
    assert 2 <= len(chunks) <= 2 + int(seconds)
    assert "".join(c["text"] for c in chunks) == expected(wide, params)
    assert last["finish_reason"] == "length" and last["index"] == 2000


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"length": -1}, 422, "length"),
        ({"temperature": 11}, 422, "temperature"),
        ({"top_p": 0}, 422, "top_p"),
        ({"seed": "\u2603"}, 422, "seed"),
        ({"checkpoint_id": 999_999}, 404, "checkpoint_id"),
    ],
)
def test_refusals_on_the_stream_endpoints_are_json(
    sqlite_settings: Settings, trained: dict[str, Any], params: dict[str, Any], status: int, field: str
) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        body = {"checkpoint_id": trained["checkpoint_id"]} | params
        for response in (
            client.get("/generate/stream", params=body),
            client.post("/generate/stream", json=body),
        ):
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            assert field in response.json()["detail"]


def test_429_with_retry_after_when_the_line_is_full(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    app = app_with(sqlite_settings, generation_max_batch=1, generation_max_waiting=1)
    long = {"checkpoint_id": trained["checkpoint_id"], "length": 10_000, "random_seed": 1}

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=AUTH, timeout=120
        ) as client:
            running = [asyncio.create_task(client.get("/generate", params=long)) for _ in range(2)]
            engine = None
            deadline = time.monotonic() + 60  # a hang here must fail the test, not the suite
            while engine is None or not (engine.active == 1 and engine.waiting == 1):
                assert time.monotonic() < deadline, (
                    "within 60 s the engine never held 1 active and 1 waiting request: "
                    + ("no engine" if engine is None else f"{engine.active} active, {engine.waiting} waiting")
                )
                await asyncio.sleep(0.01)
                engines = cache_of(app).engines()
                engine = engines[0] if engines else None
            refused = await client.get("/generate/stream", params=long)
            return list(await asyncio.gather(*running)), refused

    accepted, refused = asyncio.run(scenario())
    assert [r.status_code for r in accepted] == [200, 200]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "retry later" in refused.json()["detail"]


@pytest.fixture()
def live(sqlite_settings: Settings) -> Iterator[tuple[FastAPI, str]]:
    """The app behind a real uvicorn (in a thread of this process), so a client can hang up."""
    app = app_with(sqlite_settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=60, what="uvicorn to start")
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_client_that_disconnects_frees_its_slot(live: tuple[FastAPI, str], wide: dict[str, Any]) -> None:
    app, url = live
    steps_before = steps()
    params = {"checkpoint_id": wide["checkpoint_id"], "length": 10_000, "random_seed": 3}
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        with client.stream("GET", "/generate/stream", params=params) as response:
            assert response.status_code == 200
            # Hold on to the line iterator: dropped, httpx closes the connection at once (closing the
            # generator chain closes the stream), and the server would see a disconnect already here.
            lines = response.iter_lines()
            first = next(lines)
            assert json.loads(first.removeprefix("data: "))["index"] == 0
            (engine,) = cache_of(app).engines()
            assert engine.active == 1
        # Leaving the block closed the connection mid-stream.
        wait_for(lambda: engine.active == 0 and engine.waiting == 0, timeout=60, what="the slot to be freed")
        # It left long before its 10,000th character, and the engine takes new requests.
        assert steps() - steps_before < 10_000
        params |= {"length": 50}
        assert client.get("/generate", params=params).json()["text"] == expected(wide, params)


def test_concurrent_first_requests_load_once_and_eviction_lets_streams_finish(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    from models.checkpoint import to_bytes

    reads: list[int] = []

    def read() -> dict[str, Any]:
        reads.append(1)
        return from_bytes(to_bytes(trained["ckpt"]))

    async def scenario() -> tuple[str, str]:
        cache = ModelCache(1, max_batch=4, max_waiting=4)
        first = await asyncio.gather(*(cache.get(1, read) for _ in range(5)))
        assert len(reads) == 1 and all(m is first[0] for m in first)
        engine = first[0].engine
        assert engine is not None
        from app.generation.handle import GenerationRequest
        from models.decode.stream import Stream

        handle = engine.submit(GenerationRequest(Stream("The ", 3000, 7)))
        await cache.get(2, read)  # evicts checkpoint 1 while its stream runs
        assert 1 not in cache and 2 in cache and len(reads) == 2
        return await handle.text(), handle.finish_reason or ""

    text, reason = asyncio.run(scenario())
    assert reason == "length"
    assert text == expected(trained, {"seed": "The ", "length": 3000, "random_seed": 7})


def test_native_decode_off_serves_the_same_text_with_the_pytorch_step(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    # RNNLAB_NATIVE_DECODE=0 (for comparisons): the engine steps with PyTorch ops; the text is the same.
    params = {"checkpoint_id": trained["checkpoint_id"], "seed": "The ", "length": 300, "random_seed": 5}
    params |= {"temperature": 0.8, "top_k": 10}
    texts, natives = [], []
    for native_decode in (True, False):
        app = app_with(sqlite_settings, native_decode=native_decode)
        with TestClient(app, headers=AUTH) as client:
            texts.append(client.get("/generate", params=params).json()["text"])
            (engine,) = cache_of(app).engines()
            natives.append(engine.native)
    assert natives == [True, False]
    assert texts[0] == texts[1] == expected(trained, params)


def test_swagger_documents_the_stream_endpoints(sqlite_settings: Settings) -> None:
    paths = app_with(sqlite_settings).openapi()["paths"]
    for method in ("get", "post"):
        responses = paths["/generate/stream"][method]["responses"]
        assert "data: " in responses["200"]["content"]["text/event-stream"]["example"]
        assert "429" in responses and "429" in paths["/generate"][method]["responses"]
