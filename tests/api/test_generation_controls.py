"""Generation controls in the batching engine: stop strings, min_length, n, and the `prompt` name.

Each keeps the guarantee that a random seed gives the same text alone or beside 31 other streams: a
stop only cuts the text the same seed gives without it, and continuation i of `n` is the request with
random_seed + i.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings
from tests.api.test_generation import _generate_all, app_with, parse_events, train_text
from tests.conftest import AUTH

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def trained(sqlite_settings: Settings) -> dict[str, Any]:
    return train_text(sqlite_settings, {"num_layers": 2, "hidden_size": 32})


def full_text(client: TestClient, trained: dict[str, Any], **params: Any) -> str:
    body = {"checkpoint_id": trained["checkpoint_id"], "length": 120, "random_seed": 3} | params
    response = client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


def a_stop_in(text: str, *, after: int = 10, size: int = 2) -> tuple[str, int]:
    """A substring of `text` first occurring at or after `after`, and where it first occurs."""
    for start in range(after, len(text) - size):
        stop = text[start : start + size]
        if text.find(stop) == start:
            return stop, start
    raise AssertionError(f"no fresh {size}-character substring in {text!r}")


def test_the_text_ends_before_the_first_stop(sqlite_settings: Settings, trained: dict[str, Any]) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        base = {"checkpoint_id": trained["checkpoint_id"], "length": 120, "random_seed": 3}
        full = full_text(client, trained)
        stop, at = a_stop_in(full)
        cut = client.post("/generate", json=base | {"stop": [stop, "\x00never"]}).json()
        assert (cut["text"], cut["finish_reason"], cut["stop_reason"]) == (full[:at], "stop", stop)
        kept = client.post(
            "/generate", json=base | {"stop": [stop], "include_stop_str_in_output": True}
        ).json()
        assert kept["text"] == full[: at + len(stop)]
        # min_length: the first match would leave too little, so the text runs on to a later one or the end.
        later = client.post("/generate", json=base | {"stop": [stop], "min_length": at + 1}).json()
        again = full.find(stop, at + 1)
        assert later["text"] == (full[:again] if again >= at + 1 else full)
        none = client.post("/generate", json=base | {"stop": ["\x00never"]}).json()
        assert (none["text"], none["finish_reason"], none["stop_reason"]) == (full, "length", None)


def test_a_stream_never_shows_text_past_a_stop(sqlite_settings: Settings, trained: dict[str, Any]) -> None:
    # An event per character (interval 0): a three-character stop necessarily arrives over three events.
    with TestClient(app_with(sqlite_settings, generation_stream_interval_ms=0), headers=AUTH) as client:
        full = full_text(client, trained, length=200)
        stop, at = a_stop_in(full, after=20, size=3)
        body = {"checkpoint_id": trained["checkpoint_id"], "length": 200, "random_seed": 3, "stop": [stop]}
        *chunks, last = parse_events(client.post("/generate/stream", json=body).text)
    shown = ""
    for chunk in chunks:
        assert chunk["text"], "no empty events"
        shown += chunk["text"]
        assert full[:at].startswith(shown), "text past the stop was sent"
    assert shown == full[:at]
    assert (last["finish_reason"], last["stop_reason"], last["index"]) == ("stop", stop, at)


def test_n_continuations_are_the_requests_with_consecutive_seeds(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        base = {"checkpoint_id": trained["checkpoint_id"], "prompt": "The ", "length": 40, "temperature": 1.2}
        three = client.post("/generate", json=base | {"n": 3, "random_seed": 41}).json()
        singles = [full_text(client, trained, **base, random_seed=41 + i) for i in range(3)]
        assert [c["text"] for c in three["choices"]] == singles
        assert [c["random_seed"] for c in three["choices"]] == [41, 42, 43]
        assert [c["index"] for c in three["choices"]] == [0, 1, 2]
        assert three["text"] == singles[0] and three["random_seed"] == 41
        assert len(set(singles)) == 3  # sampled, so the continuations differ

        events = parse_events(client.post("/generate/stream", json=base | {"n": 2, "random_seed": 41}).text)
    ends = [e for e in events if "finish_reason" in e]
    by_choice = ["".join(e.get("text", "") for e in events if e["choice"] == i) for i in range(2)]
    assert by_choice == singles[:2]
    assert sorted(e["choice"] for e in ends) == [0, 1] and {e["random_seed"] for e in ends} == {41, 42}


def test_controls_mixed_in_a_batch_of_32_give_the_texts_each_gives_alone(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    app = app_with(sqlite_settings)
    with TestClient(app, headers=AUTH) as client:
        full = full_text(client, trained, length=60, temperature=0.8)
    stop, _ = a_stop_in(full, after=5)
    requests: list[dict[str, Any]] = []
    for i in range(32):
        params: dict[str, Any] = {
            "checkpoint_id": trained["checkpoint_id"],
            "prompt": ["", "The ", "Once"][i % 3],
            "length": 20 + i,
            "temperature": [0.8, 0, 1.0][i % 3],
            "random_seed": 3 if i % 4 == 0 else 100 + i,
        }
        if i % 2:
            params["stop"] = [stop, "e "][: 1 + i % 2]
        if i % 5 == 0:
            params["min_length"] = 7
        requests.append(params)
    alone = [asyncio.run(_generate_all(app, [p], "/generate"))[0].json() for p in requests]
    together = [r.json() for r in asyncio.run(_generate_all(app, requests, "/generate"))]
    assert [(r["text"], r["stop_reason"]) for r in together] == [(r["text"], r["stop_reason"]) for r in alone]
    assert any(r["finish_reason"] == "stop" for r in together) and any(
        r["finish_reason"] == "length" for r in together
    )


def test_seed_is_the_deprecated_name_of_prompt(sqlite_settings: Settings, trained: dict[str, Any]) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        old = full_text(client, trained, seed="The king")
        new = full_text(client, trained, prompt="The king")
        assert old == new
        answer = client.get(
            "/generate", params={"checkpoint_id": trained["checkpoint_id"], "prompt": "The", "length": 5}
        )
        assert answer.json()["prompt"] == answer.json()["seed"] == "The"
        schema = client.get("/openapi.json").json()["components"]["schemas"]["GenerateParams"]["properties"]
        assert schema["seed"].get("deprecated") is True and "deprecated" not in schema["prompt"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["x" * 101]}, "stop"),
        ({"n": 9}, "n"),
        ({"n": 0}, "n"),
        ({"min_length": -1}, "min_length"),
        ({"prompt": "a", "seed": "b"}, "seed"),
        ({"prompt": "\u2603"}, "prompt"),
        ({"seed": "\u2603"}, "seed"),
    ],
)
def test_bad_controls_are_422_naming_the_field(
    sqlite_settings: Settings, trained: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        body = {"checkpoint_id": trained["checkpoint_id"], "length": 5} | changes
        for path in ("/generate", "/generate/stream"):
            response = client.post(path, json=body)
            assert response.status_code == 422, response.text
            assert field in response.json()["detail"]


def test_time_to_first_character_and_queue_wait_per_model_name(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    from app.observability import metrics

    def count(name: str, model: str) -> float:
        return metrics.REGISTRY.get_sample_value(f"{name}_count", {"model": model}) or 0.0

    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        name = f"metered-{trained['job_id']}"
        client.post(f"/models/{name}/versions", json={"checkpoint_id": trained["checkpoint_id"]})
        before = [
            count(m, name)
            for m in ("rnnlab_generation_time_to_first_character_seconds", "rnnlab_generation_queue_seconds")
        ]
        client.post("/generate", json={"model": f"{name}:1", "length": 5, "n": 2})
        client.post("/v1/completions", json={"model": name, "prompt": "The", "max_tokens": 5})
        after = [
            count(m, name)
            for m in ("rnnlab_generation_time_to_first_character_seconds", "rnnlab_generation_queue_seconds")
        ]
        exposition = client.get("/metrics").text
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3]
    assert (
        f'rnnlab_generation_time_to_first_character_seconds_bucket{{le="0.001",model="{name}"}}' in exposition
    )


def test_penalties_and_logprobs_alone_and_in_a_batch_of_32(
    sqlite_settings: Settings, trained: dict[str, Any]
) -> None:
    from models.sample import generate

    app = app_with(sqlite_settings)
    controls: list[dict[str, Any]] = [
        {},
        {"repetition_penalty": 1.3},
        {"presence_penalty": 0.8, "penalty_window": 16},
        {"frequency_penalty": 0.5},
        {"no_repeat_ngram_size": 4},
        {"logprobs": 3},
        {"logprobs": 1, "repetition_penalty": 1.5, "no_repeat_ngram_size": 6, "temperature": 0.7},
        {"presence_penalty": -0.5, "frequency_penalty": 0.3, "top_k": 5},
    ]
    requests = [
        {"checkpoint_id": trained["checkpoint_id"], "prompt": "The ", "length": 40 + i, "temperature": 0}
        | controls[i % len(controls)]
        | {"random_seed": 50 + i}
        for i in range(32)
    ]
    alone = [asyncio.run(_generate_all(app, [p], "/generate"))[0].json() for p in requests[: len(controls)]]
    together = [r.json() for r in asyncio.run(_generate_all(app, requests, "/generate"))]
    assert [r["text"] for r in together[: len(controls)]] == [r["text"] for r in alone]
    for params, answer in zip(requests, together, strict=True):
        settings = {k: v for k, v in params.items() if k not in ("checkpoint_id", "prompt", "length")}
        reference = generate(
            trained["model"], trained["vocab"], "The ", params["length"], **settings, return_logprobs=True
        )
        assert answer["text"] == reference.text, params
        logprobs = answer["choices"][0]["logprobs"]
        if params.get("logprobs"):
            assert logprobs["tokens"] == list(answer["text"])
            assert logprobs["token_logprobs"] == pytest.approx(reference.logprobs, abs=1e-4)
            assert all(len(top) == params["logprobs"] for top in logprobs["top_logprobs"])
        else:
            assert logprobs is None
    # Greedy without a control loops; each control changes the text it gives.
    plain = together[0]["text"]
    assert all(together[i]["text"] != plain[: len(together[i]["text"])] for i in (1, 2, 3, 4))


def test_logprobs_stream_with_their_characters(sqlite_settings: Settings, trained: dict[str, Any]) -> None:
    body = {"checkpoint_id": trained["checkpoint_id"], "prompt": "The ", "length": 60, "random_seed": 8}
    with TestClient(app_with(sqlite_settings, generation_stream_interval_ms=0), headers=AUTH) as client:
        whole = client.post("/generate", json=body | {"logprobs": 2}).json()["choices"][0]
        *chunks, _ = parse_events(
            client.post("/generate/stream", json=body | {"logprobs": 2, "stop": ["zq"]}).text
        )
        v1 = client.post(
            "/v1/completions",
            json={"model": "x", "prompt": "The ", "max_tokens": 60, "seed": 8, "logprobs": 0},
        )
    assert "".join(c["text"] for c in chunks) == whole["text"]
    streamed = [lp for c in chunks for lp in c["logprobs"]["token_logprobs"]]
    assert streamed == whole["logprobs"]["token_logprobs"]
    assert v1.status_code == 404  # no model named x: /v1 takes names only


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"logprobs": 6}, "logprobs"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"repetition_penalty": 2.5}, "repetition_penalty"),
        ({"presence_penalty": -2.1}, "presence_penalty"),
        ({"frequency_penalty": 2.1}, "frequency_penalty"),
        ({"penalty_window": 0}, "penalty_window"),
        ({"penalty_window": 1025}, "penalty_window"),
        ({"no_repeat_ngram_size": 65}, "no_repeat_ngram_size"),
    ],
)
def test_penalties_out_of_bounds_are_422_naming_them(
    sqlite_settings: Settings, trained: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    with TestClient(app_with(sqlite_settings), headers=AUTH) as client:
        response = client.post("/generate", json={"checkpoint_id": trained["checkpoint_id"]} | changes)
    assert response.status_code == 422 and field in response.json()["detail"]


def test_the_schema_bounds_are_the_engines() -> None:
    from app.schemas.generation import GenerateParams
    from models.decode.stream import Stream

    neutral = {
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "no_repeat_ngram_size": 0,
        "penalty_window": 64,
    }
    for name, inside, outside in [
        ("repetition_penalty", 2.0, 2.0001),
        ("presence_penalty", -2.0, -2.0001),
        ("frequency_penalty", 2.0, 2.0001),
        ("no_repeat_ngram_size", 64, 65),
        ("penalty_window", 1024, 1025),
    ]:
        Stream("", 1, 0, **neutral | {name: inside})  # type: ignore[arg-type]
        GenerateParams(checkpoint_id=1, **{name: inside})
        with pytest.raises(ValueError, match=name):
            Stream("", 1, 0, **neutral | {name: outside})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=name):
            GenerateParams(checkpoint_id=1, **{name: outside})
