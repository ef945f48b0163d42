"""`POST /analyze`, `POST /analyze/units` and the gate-saturation PNG over HTTP, against the same
models traced in-process, on both backends."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from models.checkpoint import from_bytes, load_model, load_vocabulary
from models.data import digits_from, encode_digits
from models.score import score_text
from models.xray.features import in_quotes
from models.xray.trace import trace
from models.xray.units import rank_units
from tests.api.png import assert_png
from tests.conftest import TINY_PALINDROME, TINY_TEXT
from worker.tasks import run_job

TEXT = "Once upon a time there was a king, and he said: hello."
DIGITS = "12345"


def checkpoint_of(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    return from_bytes(client.get(f"/checkpoints/{job['latest_checkpoint_id']}/file").content)


@pytest.fixture(scope="module")
def trained(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    """A text job 64 units wide (so 10,000 characters are over the budget), an LSTM, a Phased LSTM
    and an RNN palindrome job, each trained in-process."""
    sessions = sessionmaker_for(settings.resolved_database_url)
    configs = {
        "text": TINY_TEXT | {"hidden_size": 64},
        "lstm": TINY_PALINDROME,
        "phased_lstm": TINY_PALINDROME | {"model": "phased_lstm"},
        "rnn": TINY_PALINDROME | {"model": "rnn", "train_steps": 20},
    }
    jobs = {}
    for name, config in configs.items():
        job = client.post("/train", json=config).json()
        assert run_job(job["id"], sessions=sessions) == "succeeded"
        jobs[name] = client.get(f"/jobs/{job['id']}").json()
    yield jobs


def test_text_xray_equals_the_model_traced_and_scored_in_process(
    client: TestClient, trained: dict[str, Any]
) -> None:
    job = trained["text"]
    response = client.post("/analyze", json={"job_id": job["id"], "text": TEXT, "units": [3, 0], "top": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    ckpt = checkpoint_of(client, job)
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None
    assert body["checkpoint_id"] == job["latest_checkpoint_id"] and body["model_type"] == "char_lstm"
    assert body["tokens"] == list(TEXT) and body["digits"] is None
    scored = score_text(model, vocab, TEXT, top=2)
    text = body["text"]
    assert text["surprisal_bits"][0] is None and text["entropy_bits"][0] is None
    assert text["surprisal_bits"][1:] == pytest.approx(
        [-lp / math.log(2) for lp in scored.token_logprobs[1:]]
    )
    assert text["entropy_bits"][1:] == pytest.approx([e / math.log(2) for e in scored.entropies[1:]])
    for tops, expected in zip(text["top"][1:], scored.top_logprobs[1:], strict=True):
        assert expected is not None
        assert tops == pytest.approx({c: math.exp(lp) for c, lp in expected.items()})
    traced = trace(model, vocab.encode(TEXT)[None])
    [layer] = body["layers"]
    assert layer["layer"] == 0 and layer["units"] == [3, 0]
    assert set(layer["signals"]) == {"i", "f", "g", "o", "c", "h"}
    for name, per_unit in layer["signals"].items():
        expected_rows = traced.layers[0][name][0][:, [3, 0]].t().tolist()
        assert per_unit == [pytest.approx(row, abs=5e-5) for row in expected_rows]  # 4 decimals
    for gate in "ifo":
        left = (traced.layers[0][gate][0][:, [3, 0]] < 0.1).double().mean(0).tolist()
        assert layer["saturation"][gate]["left"] == pytest.approx(left)
    assert set(layer["saturation"]) == {"i", "f", "o"}


def test_text_xray_defaults_to_every_unit(client: TestClient, trained: dict[str, Any]) -> None:
    body = client.post("/analyze", json={"job_id": trained["text"]["id"], "text": TEXT}).json()
    [layer] = body["layers"]
    assert layer["units"] == list(range(64))
    assert all(len(series) == len(TEXT) for series in layer["signals"]["c"])


def test_signals_choose_what_is_listed(client: TestClient, trained: dict[str, Any]) -> None:
    body = {"job_id": trained["text"]["id"], "text": TEXT, "signals": ["h", "c"]}
    [layer] = client.post("/analyze", json=body).json()["layers"]
    assert sorted(layer["signals"]) == ["c", "h"] and set(layer["saturation"]) == {"i", "f", "o"}


def test_palindrome_xray_predicts_at_each_step(client: TestClient, trained: dict[str, Any]) -> None:
    job = trained["lstm"]
    body = client.post("/analyze", json={"job_id": job["id"], "digits": DIGITS, "units": [1]}).json()
    predicted = client.post("/predict", json={"job_id": job["id"], "digits": DIGITS}).json()
    assert body["model_type"] == "lstm" and body["tokens"] == list(DIGITS) and body["text"] is None
    digits = body["digits"]
    assert len(digits["predictions"]) == len(DIGITS) and all(len(p) == 10 for p in digits["probabilities"])
    assert digits["predictions"][-1] == predicted["predicted_digit"]
    assert digits["probabilities"][-1] == pytest.approx(predicted["probabilities"], abs=1e-6)
    model = load_model(checkpoint_of(client, job))
    traced = trace(model, encode_digits(digits_from(DIGITS)[None], "one_hot"))
    expected = traced.layers[0]["c"][0, :, 1].tolist()
    assert body["layers"][0]["signals"]["c"] == [pytest.approx(expected, abs=5e-5)]


def test_phased_lstm_xray_has_the_time_gate_and_the_rnn_only_h(
    client: TestClient, trained: dict[str, Any]
) -> None:
    phased = client.post("/analyze", json={"job_id": trained["phased_lstm"]["id"], "digits": DIGITS}).json()
    signals = phased["layers"][0]["signals"]
    assert set(signals) == {"i", "f", "g", "o", "c", "h", "k"}
    assert all(0 <= k <= 1 for series in signals["k"] for k in series)
    rnn = client.post("/analyze", json={"job_id": trained["rnn"]["id"], "digits": DIGITS}).json()
    assert set(rnn["layers"][0]["signals"]) == {"h"} and rnn["layers"][0]["saturation"] == {}


@pytest.mark.parametrize(
    ("job", "changes", "status", "field"),
    [
        ("text", {"digits": "123", "text": None}, 409, "text"),  # says which input the model takes
        ("lstm", {}, 409, "digits"),
        ("text", {"text": "a king \u2603"}, 422, "\u2603"),
        ("text", {"units": [64]}, 422, "units"),
        ("text", {"units": [-1]}, 422, "units"),
        ("text", {"layers": [1]}, 422, "layers"),
        ("text", {"text": "the " * 2500}, 422, "text"),  # 10,000 x 64 units is over the budget
        ("text", {"text": "x" * 10_001}, 422, "text"),
        ("text", {"top": 11}, 422, "top"),
        ("text", {"signals": ["c", "k"]}, 422, "signals"),  # k is the Phased LSTM's
        ("text", {"encoding": "float16"}, 422, "encoding"),
        ("text", {"digits": "12"}, 422, "exactly one"),
        ("text", {"text": None}, 422, "exactly one"),
    ],
)
def test_bad_input(
    client: TestClient, trained: dict[str, Any], job: str, changes: dict[str, Any], status: int, field: str
) -> None:
    body = {"job_id": trained[job]["id"], "text": TEXT} | changes
    response = client.post("/analyze", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]


def decoded(body: dict[str, Any], packed: str, shape: str) -> np.ndarray:
    """The README's recipe: base64 -> bytes -> the stated dtype -> the stated shape."""
    arrays = body["arrays"]
    return np.frombuffer(base64.b64decode(packed), dtype=arrays["dtype"]).reshape(arrays["shapes"][shape])


def test_base64_arrays_are_the_json_values_and_bitwise_the_trace(
    client: TestClient, trained: dict[str, Any]
) -> None:
    job = trained["text"]
    request = {"job_id": job["id"], "text": TEXT, "units": [5, 1, 2], "top": 2}
    listed = client.post("/analyze", json=request).json()
    response = client.post("/analyze", json=request | {"encoding": "base64"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert listed["encoding"] == "json" and "arrays" not in listed
    assert body["encoding"] == "base64" and body["arrays"]["dtype"] == "<f4"
    assert body["arrays"]["shapes"]["signals"] == [3, len(TEXT)]
    assert body["tokens"] == listed["tokens"] and body["text"]["top"] == listed["text"]["top"]
    ckpt = checkpoint_of(client, job)
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None
    traced = trace(model, vocab.encode(TEXT)[None])
    [layer], [json_layer] = body["layers"], listed["layers"]
    assert layer["units"] == [5, 1, 2] and layer["saturation"] == json_layer["saturation"]
    assert set(layer["signals"]) == set(json_layer["signals"]) == {"i", "f", "g", "o", "c", "h"}
    for name, packed in layer["signals"].items():
        values = decoded(body, packed, "signals")
        assert np.array_equal(values, traced.layers[0][name][0][:, [5, 1, 2]].t().numpy())  # unrounded
        np.testing.assert_allclose(values, json_layer["signals"][name], rtol=0, atol=5e-5)  # 4 decimals
    for field in ("surprisal_bits", "entropy_bits"):
        values = decoded(body, body["text"][field], field)
        assert values.shape == (len(TEXT),) and np.isnan(values[0])  # JSON's null
        np.testing.assert_allclose(values[1:], listed["text"][field][1:], rtol=1e-6)  # float32 of float64


def test_npz_members_are_the_base64_arrays(client: TestClient, trained: dict[str, Any]) -> None:
    """The README's recipe: np.load, answer.json, then each string names its member."""
    job = trained["text"]
    request = {"job_id": job["id"], "text": TEXT, "layers": [0], "units": [5, 1, 2], "top": 2}
    packed = client.post("/analyze", json=request | {"encoding": "base64"}).json()
    response = client.post("/analyze", json=request | {"encoding": "npz"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(response.content)) as members:
        body = json.loads(members["answer.json"])
        assert body["encoding"] == "npz" and body["arrays"] == packed["arrays"]
        assert body["text"]["top"] == packed["text"]["top"] and body["tokens"] == packed["tokens"]
        [layer], [packed_layer] = body["layers"], packed["layers"]
        assert layer["saturation"] == packed_layer["saturation"]
        for name, member in layer["signals"].items():
            assert member == f"layer0/{name}" and members[member].dtype == np.dtype("<f4")
            assert np.array_equal(members[member], decoded(packed, packed_layer["signals"][name], "signals"))
        for field in ("surprisal_bits", "entropy_bits"):
            values = members[body["text"][field]]
            expected = decoded(packed, packed["text"][field], field)
            assert values.shape == (len(TEXT),) and np.array_equal(values, expected, equal_nan=True)


def test_npz_palindrome_probabilities(client: TestClient, trained: dict[str, Any]) -> None:
    request = {"job_id": trained["lstm"]["id"], "digits": DIGITS, "encoding": "npz"}
    with np.load(io.BytesIO(client.post("/analyze", json=request).content)) as members:
        body = json.loads(members["answer.json"])
        probabilities = members[body["digits"]["probabilities"]]
    assert probabilities.shape == (len(DIGITS), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)


def test_base64_palindrome_probabilities(client: TestClient, trained: dict[str, Any]) -> None:
    request = {"job_id": trained["phased_lstm"]["id"], "digits": DIGITS, "units": [0, 2]}
    listed = client.post("/analyze", json=request).json()
    body = client.post("/analyze", json=request | {"encoding": "base64"}).json()
    assert body["arrays"]["shapes"] == {"signals": [2, len(DIGITS)], "probabilities": [len(DIGITS), 10]}
    assert body["digits"]["predictions"] == listed["digits"]["predictions"]
    probabilities = decoded(body, body["digits"]["probabilities"], "probabilities")
    np.testing.assert_allclose(probabilities, listed["digits"]["probabilities"], rtol=1e-6)
    k = decoded(body, body["layers"][0]["signals"]["k"], "signals")
    np.testing.assert_allclose(k, listed["layers"][0]["signals"]["k"], rtol=0, atol=5e-5)


def test_the_budget_allows_long_texts_with_few_units(client: TestClient, trained: dict[str, Any]) -> None:
    body = {"job_id": trained["text"]["id"], "text": "the " * 2500, "units": [0, 1, 2]}
    response = client.post("/analyze", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["layers"][0]["signals"]["h"][0]) == 10_000


QUOTED = 'He said "no, not now" and left. She said "why", then "well, so be it".' * 4


def test_units_rank_as_the_model_does_in_process(client: TestClient, trained: dict[str, Any]) -> None:
    job = trained["text"]
    request = {"job_id": job["id"], "text": QUOTED, "feature": "in_quotes", "signal": "h", "top": 4}
    response = client.post("/analyze/units", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    ckpt = checkpoint_of(client, job)
    model, vocab = load_model(ckpt), load_vocabulary(ckpt)
    assert vocab is not None
    activations = trace(model, vocab.encode(QUOTED)[None]).layers[0]["h"][0]
    expected = rank_units(activations, in_quotes(QUOTED), 4)
    assert [u["unit"] for u in body["units"]] == [u.unit for u in expected]
    assert [u["r"] for u in body["units"]] == pytest.approx([u.r for u in expected])
    assert [abs(u["r"]) for u in body["units"]] == sorted((abs(u["r"]) for u in body["units"]), reverse=True)
    start, excerpt = body["excerpt_start"], body["excerpt"]
    assert QUOTED[start : start + len(excerpt)] == excerpt and 0 < len(excerpt) <= 80
    assert body["feature_values"] == in_quotes(QUOTED)[start : start + len(excerpt)]
    assert body["feature"] == "in_quotes" and body["positions"] == len(QUOTED)
    unit = body["units"][0]["unit"]
    assert body["units"][0]["values"] == pytest.approx(
        activations[start : start + len(excerpt), unit].tolist()
    )


def test_units_by_regex(client: TestClient, trained: dict[str, Any]) -> None:
    request = {"job_id": trained["text"]["id"], "text": QUOTED, "regex": "[aeiou]"}
    by_regex = client.post("/analyze/units", json=request).json()
    by_vowel = client.post("/analyze/units", json=request | {"regex": "[aeiouAEIOU]"}).json()
    assert by_regex["feature"] == "regex:[aeiou]" and len(by_regex["units"]) == 5
    assert {u["unit"] for u in by_regex["units"]} & {u["unit"] for u in by_vowel["units"]}


def test_units_regex_that_backtracks_forever_is_stopped(client: TestClient, trained: dict[str, Any]) -> None:
    # (a|aa)+b on 60 a's tries every composition of 60 into 1s and 2s (~10^12): `re` would not return.
    request = {"job_id": trained["text"]["id"], "text": "a" * 60, "regex": "(a|aa)+b"}
    response = client.post("/analyze/units", json=request)
    assert response.status_code == 422, response.text
    assert "regex" in response.json()["detail"] and "ran past 1 s" in response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"regex": "[a"}, 422, "regex"),
        ({"regex": "x" * 101}, 422, "regex"),
        ({"regex": "z"}, 422, "regex"),  # matches nothing: constant
        ({"feature": "in_quotes"}, 422, "exactly one"),
        ({"regex": None, "feature": "colour"}, 422, "feature"),
        ({"layer": 1}, 422, "layer"),
        ({"signal": "g"}, 422, "signal"),
        ({"top": 0}, 422, "top"),
    ],
)
def test_units_bad_input(
    client: TestClient, trained: dict[str, Any], changes: dict[str, Any], status: int, field: str
) -> None:
    body = {"job_id": trained["text"]["id"], "text": QUOTED, "regex": "[aeiou]"} | changes
    response = client.post("/analyze/units", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]


def test_units_of_a_palindrome_model_is_409(client: TestClient, trained: dict[str, Any]) -> None:
    body = {"job_id": trained["lstm"]["id"], "text": "1234", "feature": "vowel"}
    response = client.post("/analyze/units", json=body)
    assert response.status_code == 409 and "digits" in response.json()["detail"]


def test_gate_saturation_png(client: TestClient, trained: dict[str, Any]) -> None:
    text_job, lstm_job = trained["text"], trained["lstm"]
    for url in (
        f"/jobs/{text_job['id']}/gate-saturation.png",
        f"/checkpoints/{text_job['latest_checkpoint_id']}/gate-saturation.png?text=Once%20upon",
        f"/jobs/{lstm_job['id']}/gate-saturation.png",
        f"/jobs/{trained['phased_lstm']['id']}/gate-saturation.png?digits=123",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        assert response.headers["content-type"] == "image/png"
        assert_png(response.content)
    assert client.get(f"/jobs/{trained['rnn']['id']}/gate-saturation.png").status_code == 409
    assert client.get(f"/jobs/{lstm_job['id']}/gate-saturation.png?text=abc").status_code == 409
    bad = client.get(f"/jobs/{text_job['id']}/gate-saturation.png?text=%E2%98%83")
    assert bad.status_code == 422 and "text" in bad.json()["detail"]
    assert client.get("/checkpoints/999999/gate-saturation.png").status_code == 404


def test_trace_is_deterministic_over_http(client: TestClient, trained: dict[str, Any]) -> None:
    body = {"job_id": trained["text"]["id"], "text": TEXT, "units": [2]}
    first, second = (client.post("/analyze", json=body).json() for _ in range(2))
    assert first["layers"] == second["layers"]
