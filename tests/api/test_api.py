"""HTTP against the app with a real database, on PostgreSQL and SQLite (the `settings` fixture)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.main import create_app
from tests.conftest import AUTH, TINY_PALINDROME, TINY_TEXT, count_rows
from tests.data import LATIN1_EXCERPT


def test_train_answers_202_with_location(client: TestClient, settings: Settings) -> None:
    response = client.post("/train", json=TINY_PALINDROME)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["total_steps"] == 40 and job["progress"] == 0
    # The stored config is exactly the training config: course defaults filled in, no service fields.
    assert job["config"]["optimizer"] == "rmsprop" and "resume_from" not in job["config"]
    assert client.get(response.headers["location"]).json()["id"] == job["id"]


def test_text_job_defaults_to_the_builtin_dataset(client: TestClient) -> None:
    job = client.post("/train", json=TINY_TEXT).json()
    builtin = [d for d in client.get("/datasets").json() if d["builtin"]]
    assert job["dataset_id"] == builtin[0]["id"]
    assert builtin[0]["characters"] > 100_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "palindrome", "model": "gru"}, "model"),
        ({"task": "text", "model": "transformer"}, "model"),
        ({"task": "text", "train_steps": 10_000_000}, "train_steps"),
        ({"task": "palindrome", "hidden_size": 0}, "hidden_size"),
        ({"task": "palindrome", "learning_rate": -1}, "learning_rate"),
        ({"task": "palindrome", "bogus": 1}, "bogus"),
        ({"task": "sudoku"}, "task"),
        ({"task": "palindrome", "init": "xavier"}, "init"),
        ({"task": "palindrome", "model": "rnn", "init": "chrono"}, "init"),
        ({"task": "palindrome", "input_length": 10, "curriculum_start": 20}, "curriculum_start"),
        ({"task": "palindrome", "curriculum_threshold": 0}, "curriculum_threshold"),
        ({"task": "palindrome", "curriculum_threshold": 1.5}, "curriculum_threshold"),
        ({"task": "text", "curriculum_start": 5}, "curriculum_start"),
    ],
)
def test_invalid_training_requests_are_422_naming_the_field(
    client: TestClient, settings: Settings, body: dict[str, Any], field: str
) -> None:
    before = count_rows(settings)
    response = client.post("/train", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert response.json()["errors"][0]["loc"][0] == "body"
    assert count_rows(settings) == before


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"task": "palindrome", "init": "xavier"},
            "'default', 'chrono', 'orthogonal', 'chrono_orthogonal' or 'identity'",
        ),
        ({"task": "text", "init": "identity"}, "'default', 'chrono', 'orthogonal' or 'chrono_orthogonal'"),
        (
            {"task": "palindrome", "model": "rnn", "init": "chrono"},
            "it accepts default, identity, orthogonal",
        ),
        ({"task": "text", "curriculum_start": 5}, "the curriculum applies to palindrome jobs only"),
    ],
)
def test_a_bad_init_lists_the_known_ones_and_a_text_curriculum_says_why(
    client: TestClient, body: dict[str, Any], says: str
) -> None:
    response = client.post("/train", json=body)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_references_that_do_not_exist(client: TestClient, settings: Settings) -> None:
    before = count_rows(settings)
    response = client.post("/train", json=TINY_TEXT | {"dataset_id": 999_999})
    assert response.status_code == 404 and "dataset_id" in response.json()["detail"]
    response = client.post("/train", json=TINY_TEXT | {"resume_from": 999_999})
    assert response.status_code == 404 and "resume_from" in response.json()["detail"]
    assert count_rows(settings) == before


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/999999",
        "/jobs/999999/metrics",
        "/jobs/999999/samples",
        "/jobs/999999/checkpoints",
        "/checkpoints/999999",
        "/checkpoints/999999/file",
        "/datasets/999999",
        "/generate?checkpoint_id=999999",
        "/generate?job_id=999999",
    ],
)
def test_unknown_ids_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert "not found" in response.json()["detail"]


def test_cancel(client: TestClient) -> None:
    assert client.post("/jobs/999999/cancel").status_code == 404
    job = client.post("/train", json=TINY_PALINDROME).json()
    cancelled = client.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"] is not None
    again = client.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_list_jobs_filters_and_paginates(client: TestClient) -> None:
    ids = [client.post("/train", json=TINY_PALINDROME).json()["id"] for _ in range(3)]
    client.post(f"/jobs/{ids[0]}/cancel")
    page = client.get("/jobs", params={"task": "palindrome", "limit": 2}).json()
    assert len(page["items"]) == 2 and page["total"] >= 3 and page["limit"] == 2
    assert [j["id"] for j in page["items"]] == sorted([j["id"] for j in page["items"]], reverse=True)
    cancelled = client.get("/jobs", params={"status": "cancelled"}).json()
    assert ids[0] in [j["id"] for j in cancelled["items"]]
    assert all(j["status"] == "cancelled" for j in cancelled["items"])
    assert client.get("/jobs", params={"status": "pending"}).status_code == 422


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"job_id": 1, "length": -1}, "length"),
        ({"job_id": 1, "length": 10_001}, "length"),
        ({"job_id": 1, "temperature": -1}, "temperature"),
        ({"job_id": 1, "temperature": 1e-40}, "temperature"),  # logits / it would overflow to inf
        ({"job_id": 1, "top_p": 0}, "top_p"),
        ({"job_id": 1, "checkpoint_id": 1}, "job_id"),
        ({}, "checkpoint_id"),
    ],
)
def test_generate_validation(client: TestClient, params: dict[str, Any], field: str) -> None:
    for response in (client.get("/generate", params=params), client.post("/generate", json=params)):
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"]


def test_generate_from_a_job_without_checkpoint_is_409(client: TestClient) -> None:
    job = client.post("/train", json=TINY_TEXT).json()
    response = client.get("/generate", params={"job_id": job["id"]})
    assert response.status_code == 409 and "no checkpoint" in response.json()["detail"]


def test_upload_dataset(client: TestClient) -> None:
    text = "Once upon a time there was a king.\n" * 20
    response = client.post(
        "/datasets", files={"file": ("king.txt", text.encode(), "text/plain")}, data={"name": "kings"}
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == "kings" and dataset["characters"] == len(text)
    assert dataset["vocab_size"] == len(set(text)) and dataset["preview"].startswith("Once upon")
    assert client.get(f"/datasets/{dataset['id']}").json()["preview"] == dataset["preview"]


def test_latin1_upload_is_422_naming_the_byte_offset(client: TestClient, settings: Settings) -> None:
    raw = LATIN1_EXCERPT.read_bytes()
    before = count_rows(settings)
    response = client.post("/datasets", files={"file": ("calculus.tex", raw, "text/plain")})
    assert response.status_code == 422, response.text
    assert "byte offset 183" in response.json()["detail"]  # the first byte that is not UTF-8
    assert response.json()["errors"][0]["loc"] == ["body", "file"]
    assert count_rows(settings) == before


@pytest.fixture(scope="module")
def small_limit_client(sqlite_settings: Settings) -> Iterator[TestClient]:
    app = create_app(sqlite_settings.model_copy(update={"max_upload_bytes": 1000}))
    with TestClient(app, headers=AUTH) as client:
        yield client


def test_upload_over_the_limit_is_413(small_limit_client: TestClient, sqlite_settings: Settings) -> None:
    before = count_rows(sqlite_settings)
    # Refused by Content-Length, before the body is read.
    response = small_limit_client.post("/datasets", files={"file": ("big.txt", b"a" * 200_000, "text/plain")})
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]
    # Chunked (no Content-Length): refused while streaming.
    boundary = "rnnlabboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'.encode()
    chunks = iter([head] + [b"a" * 16_384] * 12 + [f"\r\n--{boundary}--\r\n".encode()])
    response = small_limit_client.post(
        "/datasets", content=chunks, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413, response.text
    # Just over the limit but within the multipart allowance: refused by the exact count.
    response = small_limit_client.post("/datasets", files={"file": ("big.txt", b"a" * 1001, "text/plain")})
    assert response.status_code == 413
    assert count_rows(sqlite_settings) == before


def test_health_ready_and_offline_docs(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    checks = client.get("/ready").json()["checks"]
    # No worker consumes this client's queue: /ready says so (tests/worker/test_liveness.py).
    assert checks["database"] == checks["broker"] == "ok" and checks["workers"].startswith("down: no worker")
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert assets, html
        assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert "/train" in client.get("/openapi.json").json()["paths"]


def test_ready_is_503_when_the_broker_is_down(settings: Settings) -> None:
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert "broker" in response.json()["status"] and response.json()["checks"]["database"] == "ok"
