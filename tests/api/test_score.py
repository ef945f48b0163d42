"""`POST /score` over HTTP: the per-character log-probabilities of a trained model, by id, job or name."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from models.checkpoint import from_bytes, load_model, load_vocabulary
from models.score import score_text
from tests.conftest import TINY_PALINDROME, TINY_TEXT
from worker.tasks import run_job

TEXT = "Once upon a time there was a king."


@pytest.fixture(scope="module")
def trained(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    sessions = sessionmaker_for(settings.resolved_database_url)
    text_job = client.post("/train", json=TINY_TEXT).json()
    digits_job = client.post("/train", json=TINY_PALINDROME).json()
    for job in (text_job, digits_job):
        assert run_job(job["id"], sessions=sessions) == "succeeded"
    text_job = client.get(f"/jobs/{text_job['id']}").json()
    ckpt = from_bytes(client.get(f"/checkpoints/{text_job['latest_checkpoint_id']}/file").content)
    yield {
        "job": text_job,
        "palindrome_job_id": digits_job["id"],
        "model": load_model(ckpt),
        "vocab": load_vocabulary(ckpt),
    }


def test_score_equals_the_model_scored_in_process(client: TestClient, trained: dict[str, Any]) -> None:
    response = client.post("/score", json={"job_id": trained["job"]["id"], "text": TEXT, "top_logprobs": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = score_text(trained["model"], trained["vocab"], TEXT, top=2)
    assert body["checkpoint_id"] == trained["job"]["latest_checkpoint_id"]
    assert body["tokens"] == list(TEXT) and body["token_logprobs"][0] is None
    assert body["token_logprobs"] == pytest.approx(expected.token_logprobs)
    assert body["entropies"] == pytest.approx(expected.entropies)
    assert body["top_logprobs"][0] is None and all(len(t) == 2 for t in body["top_logprobs"][1:])
    assert body["total_logprob"] == pytest.approx(sum(body["token_logprobs"][1:]))
    assert body["bits_per_character"] == pytest.approx(-body["total_logprob"] / math.log(2) / (len(TEXT) - 1))


def test_score_by_model_name(client: TestClient, trained: dict[str, Any]) -> None:
    name = f"score-{trained['job']['id']}"
    client.post(f"/models/{name}/versions", json={"checkpoint_id": trained["job"]["latest_checkpoint_id"]})
    by_name = client.post("/score", json={"model": name, "text": TEXT}).json()
    by_id = client.post(
        "/score", json={"checkpoint_id": trained["job"]["latest_checkpoint_id"], "text": TEXT}
    )
    assert by_name["token_logprobs"] == by_id.json()["token_logprobs"]


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"text": ""}, 422, "text"),
        ({"text": "x" * 10_001}, 422, "text"),
        ({"text": "a king \u00e9\u00e9 \u2603"}, 422, "text"),
        ({"top_logprobs": 6}, 422, "top_logprobs"),
        ({"top_logprobs": -1}, 422, "top_logprobs"),
        ({"temperature": 1}, 422, "temperature"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, trained: dict[str, Any], changes: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/score", json={"job_id": trained["job"]["id"], "text": TEXT} | changes)
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]


def test_characters_outside_the_vocabulary_are_named(client: TestClient, trained: dict[str, Any]) -> None:
    detail = client.post("/score", json={"job_id": trained["job"]["id"], "text": "king \u2603"}).json()[
        "detail"
    ]
    assert "\u2603" in detail


def test_a_palindrome_model_is_409(client: TestClient, trained: dict[str, Any]) -> None:
    response = client.post("/score", json={"job_id": trained["palindrome_job_id"], "text": "12"})
    assert response.status_code == 409 and "digits" in response.json()["detail"]
