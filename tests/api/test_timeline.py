"""The learning timeline over HTTP on both backends: one prompt sampled from every kept checkpoint,
reproducible, equal to what /generate gives, beside the metrics recorded at or before each step."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.schemas.timeline import MAX_TIMELINE_CHECKPOINTS, MAX_TIMELINE_LENGTH, MAX_TIMELINE_PROMPT
from tests.conftest import TINY_PALINDROME, TINY_TEXT
from worker.lifecycle import run_job

# Checkpoints at 15, 30 and 40 (the final one), training metrics every 10: the checkpoint at 15 takes
# step 10's training accuracy. The loop validates at every checkpoint (besides every eval_every steps),
# so each row's bits per character are its own step's.
UNALIGNED = TINY_TEXT | {"checkpoint_every": 15, "eval_every": 20, "log_every": 10, "train_steps": 40}
QUERY = {"prompt": "The ", "random_seed": 1, "length": 40}


@pytest.fixture(scope="module")
def text_job(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    job = client.post("/train", json=UNALIGNED).json()
    assert run_job(job["id"], sessions=sessionmaker_for(settings.resolved_database_url)) == "succeeded"
    yield client.get(f"/jobs/{job['id']}").json()


def _metric(client: TestClient, job_id: int, name: str) -> dict[int, float]:
    items = client.get(f"/jobs/{job_id}/metrics", params={"name": name}).json()["items"]
    return {p["step"]: p["value"] for p in items}


def test_a_row_per_checkpoint_with_the_metrics_at_or_before_its_step(
    client: TestClient, text_job: dict[str, Any]
) -> None:
    response = client.get(f"/jobs/{text_job['id']}/timeline", params=QUERY)
    assert response.status_code == 200, response.text
    table = response.json()
    checkpoints = client.get(f"/jobs/{text_job['id']}/checkpoints").json()
    assert [r["checkpoint_id"] for r in table["rows"]] == [c["id"] for c in checkpoints]
    assert [r["step"] for r in table["rows"]] == [15, 30, 40] and table["kept_checkpoints"] == 3
    assert table["random_seed"] == 1 and table["temperature"] == 1.0  # /generate's default
    val_loss = _metric(client, text_job["id"], "val_loss")
    accuracy = _metric(client, text_job["id"], "accuracy")
    assert sorted(val_loss) == [15, 20, 30, 40] and sorted(accuracy) == [10, 20, 30, 40]
    expected_loss_steps = [15, 30, 40]
    for row, loss_step, accuracy_step in zip(table["rows"], expected_loss_steps, [10, 30, 40], strict=True):
        assert row["val_loss_step"] == loss_step and row["accuracy_step"] == accuracy_step
        assert row["val_bits_per_char"] == pytest.approx(val_loss[loss_step] / math.log(2), rel=1e-12)
        assert row["train_accuracy"] == accuracy[accuracy_step]
        assert len(row["text"]) == 40


def test_the_same_request_gives_the_same_table(client: TestClient, text_job: dict[str, Any]) -> None:
    url = f"/jobs/{text_job['id']}/timeline"
    assert client.get(url, params=QUERY).json() == client.get(url, params=QUERY).json()
    drawn = client.get(url, params={"prompt": "The ", "length": 30}).json()
    again = client.get(url, params={"prompt": "The ", "length": 30, "random_seed": drawn["random_seed"]})
    assert again.json() == drawn
    # Another seed gives other text: the seed is used, not ignored.
    other = client.get(url, params=QUERY | {"random_seed": 2}).json()
    assert [r["text"] for r in other["rows"]] != [r["text"] for r in drawn["rows"]]


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.0])
def test_each_sample_is_what_generate_gives(
    client: TestClient, text_job: dict[str, Any], temperature: float
) -> None:
    table = client.get(f"/jobs/{text_job['id']}/timeline", params=QUERY | {"temperature": temperature}).json()
    for row in table["rows"]:
        body = {"checkpoint_id": row["checkpoint_id"], "temperature": temperature} | QUERY
        generated = client.post("/generate", json=body)
        assert generated.status_code == 200, generated.text
        assert generated.json()["text"] == row["text"]


def test_checkpoints_are_spread_over_the_run(client: TestClient, text_job: dict[str, Any]) -> None:
    url = f"/jobs/{text_job['id']}/timeline"
    assert [r["step"] for r in client.get(url, params=QUERY | {"checkpoints": 1}).json()["rows"]] == [40]
    assert [r["step"] for r in client.get(url, params=QUERY | {"checkpoints": 2}).json()["rows"]] == [15, 40]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"prompt": "x" * (MAX_TIMELINE_PROMPT + 1)}, "prompt"),
        ({"prompt": "The ☃"}, "prompt"),  # not in the vocabulary
        ({"length": MAX_TIMELINE_LENGTH + 1}, "length"),
        ({"length": -1}, "length"),
        ({"temperature": 1e-6}, "temperature"),
        ({"temperature": 11}, "temperature"),
        ({"random_seed": -1}, "random_seed"),
        ({"checkpoints": 0}, "checkpoints"),
        ({"checkpoints": MAX_TIMELINE_CHECKPOINTS + 1}, "checkpoints"),
        ({"tempreature": 0.5}, "tempreature"),  # a misspelt parameter is not silently ignored
    ],
)
def test_timeline_bounds(
    client: TestClient, text_job: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    response = client.get(f"/jobs/{text_job['id']}/timeline", params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_timeline_refusals(client: TestClient) -> None:
    palindrome = client.post("/train", json=TINY_PALINDROME).json()
    response = client.get(f"/jobs/{palindrome['id']}/timeline")
    assert response.status_code == 409 and "no text to sample" in response.json()["detail"]
    untrained = client.post("/train", json=TINY_TEXT).json()
    response = client.get(f"/jobs/{untrained['id']}/timeline")
    assert response.status_code == 409 and "no checkpoint" in response.json()["detail"]
    assert client.get("/jobs/999999/timeline").status_code == 404
