"""The memory horizon of text jobs over HTTP (JSON and figures, a job's and an experiment's), on both
backends; its arithmetic is tested on hand-set models in tests/models/test_horizon.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.schemas.analysis import MAX_HORIZON_CHECKPOINTS, MAX_HORIZON_TEXT
from models.checkpoint import from_bytes, load_model, load_vocabulary
from models.horizon import memory_horizon
from models.horizon_limits import MAX_LAG, MAX_WINDOWS
from tests.api.png import assert_png
from tests.conftest import TINY_PALINDROME, TINY_TEXT
from worker.lifecycle import run_job

TEXT = "Once upon a time there was a king who had three daughters, and the youngest was the fairest. " * 3


@pytest.fixture(scope="module")
def text_job(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    """A tiny text job trained in-process: 40 steps, checkpoints at 20 and 40."""
    job = client.post("/train", json=TINY_TEXT).json()
    assert run_job(job["id"], sessions=sessionmaker_for(settings.resolved_database_url)) == "succeeded"
    yield client.get(f"/jobs/{job['id']}").json()


def test_memory_horizon_of_the_latest_checkpoint(client: TestClient, text_job: dict[str, Any]) -> None:
    url = f"/jobs/{text_job['id']}/memory-horizon"
    response = client.get(url, params={"max_lag": 16, "windows": 8})
    assert response.status_code == 200, response.text
    horizon = response.json()
    assert horizon["checkpoint_id"] == text_job["latest_checkpoint_id"] and horizon["step"] == 40
    assert horizon["text"] == "validation" and horizon["model"] == "char_lstm"
    assert horizon["k"] == list(range(17)) and len(horizon["mean_norm"]) == 17 and horizon["windows"] == 8
    assert all(math.isfinite(n) and n >= 0 for n in horizon["mean_norm"]) and horizon["mean_norm"][0] > 0
    assert horizon["mean_log_prob"] < 0
    # Fixed windows of a fixed text: the same answer every time.
    assert client.get(url, params={"max_lag": 16, "windows": 8}).json() == horizon

    first = client.get(f"/jobs/{text_job['id']}/checkpoints").json()[0]
    earlier = client.get(url, params={"max_lag": 16, "windows": 8, "checkpoint_id": first["id"]}).json()
    assert earlier["step"] == 20 and earlier["mean_norm"] != horizon["mean_norm"]


def test_a_given_text_is_measured_as_the_model_measures_it(
    client: TestClient, text_job: dict[str, Any]
) -> None:
    response = client.get(
        f"/jobs/{text_job['id']}/memory-horizon", params={"text": TEXT, "max_lag": 20, "windows": 12}
    )
    assert response.status_code == 200, response.text
    horizon = response.json()
    assert horizon["text"] == "query" and horizon["text_length"] == len(TEXT)
    ckpt = from_bytes(client.get(f"/checkpoints/{text_job['latest_checkpoint_id']}/file").content)
    vocab = load_vocabulary(ckpt)
    assert vocab is not None
    expected = memory_horizon(load_model(ckpt), vocab.encode(TEXT), max_lag=20, windows=12)
    assert horizon["mean_norm"] == pytest.approx(expected.mean_norm, rel=1e-6)
    assert horizon["windows"] == expected.windows == 12


def test_memory_horizon_figures(client: TestClient, text_job: dict[str, Any]) -> None:
    url = f"/jobs/{text_job['id']}/memory-horizon.png"
    ids = [c["id"] for c in client.get(f"/jobs/{text_job['id']}/checkpoints").json()]
    for params in ({}, {"checkpoint_id": ids}, {"checkpoints": "all", "max_lag": 32}):
        image = client.get(url, params=params)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png", image.text
        assert_png(image.content)
    both = client.get(url, params={"checkpoints": "all", "checkpoint_id": ids[0]})
    assert both.status_code == 422 and "checkpoints" in both.json()["detail"]
    too_many = client.get(url, params={"checkpoint_id": [ids[0]] * (MAX_HORIZON_CHECKPOINTS + 1)})
    assert too_many.status_code == 422 and "checkpoint_id" in too_many.json()["detail"]
    assert client.get(url, params={"checkpoints": "every"}).status_code == 422


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_lag": MAX_LAG + 1}, "max_lag"),
        ({"max_lag": -1}, "max_lag"),
        ({"windows": 0}, "windows"),
        ({"windows": MAX_WINDOWS + 1}, "windows"),
        ({"text": "x" * (MAX_HORIZON_TEXT + 1)}, "text"),
        ({"text": ""}, "text"),
        ({"text": "Once upon a ☃ time", "max_lag": 4}, "text"),  # not in the vocabulary
        ({"text": "Once", "max_lag": 16}, "text"),  # shorter than max_lag + 2
    ],
)
def test_memory_horizon_bounds(
    client: TestClient, text_job: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    for path in ("memory-horizon", "memory-horizon.png"):
        response = client.get(f"/jobs/{text_job['id']}/{path}", params=params)
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"]


def test_memory_horizon_refusals(client: TestClient, text_job: dict[str, Any]) -> None:
    palindrome = client.post("/train", json=TINY_PALINDROME).json()
    for path in ("memory-horizon", "memory-horizon.png"):
        response = client.get(f"/jobs/{palindrome['id']}/{path}")
        assert response.status_code == 409 and "gradient-flow" in response.json()["detail"]
        assert client.get(f"/jobs/999999/{path}").status_code == 404

    untrained = client.post("/train", json=TINY_TEXT).json()
    response = client.get(f"/jobs/{untrained['id']}/memory-horizon")
    assert response.status_code == 409 and "no checkpoint" in response.json()["detail"]
    other = text_job["latest_checkpoint_id"]
    response = client.get(f"/jobs/{untrained['id']}/memory-horizon", params={"checkpoint_id": other})
    assert response.status_code == 422 and "checkpoint_id" in response.json()["detail"]
    response = client.get(f"/jobs/{text_job['id']}/memory-horizon", params={"checkpoint_id": 999_999})
    assert response.status_code == 404 and "checkpoint_id" in response.json()["detail"]


def test_an_experiment_overlays_its_jobs(client: TestClient, settings: Settings) -> None:
    """Two LSTMs on the same text, one trained on windows of 2 characters (it never needs to look
    further back: the nearest a char_lstm comes to a vanilla RNN's horizon) and one on 16."""
    body = {k: v for k, v in TINY_TEXT.items() if k != "seq_length"}
    experiment = client.post("/experiments", json=body | {"sweep": {"seq_length": [2, 16]}}).json()
    url = f"/experiments/{experiment['id']}/memory-horizon.png"
    # Before any job has a checkpoint: a figure that says so, not an error.
    assert_png(client.get(url).content)
    sessions = sessionmaker_for(settings.resolved_database_url)
    for row in experiment["results"]:
        assert run_job(row["job_id"], sessions=sessions) == "succeeded"
    image = client.get(url, params={"max_lag": 24, "windows": 16})
    assert image.status_code == 200 and image.headers["content-type"] == "image/png", image.text
    assert_png(image.content)
    assert client.get(url, params={"max_lag": MAX_LAG + 1}).status_code == 422
    assert client.get("/experiments/999999/memory-horizon.png").status_code == 404

    palindromes = client.post("/experiments", json=TINY_PALINDROME | {"sweep": {"seed": [0, 1]}}).json()
    response = client.get(f"/experiments/{palindromes['id']}/memory-horizon.png")
    assert response.status_code == 409 and "gradient-flow" in response.json()["detail"]
