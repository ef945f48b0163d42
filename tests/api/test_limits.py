"""Limits and input hardening: queue size, rate limit, memory admission, ids the database can store."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job
from app.main import create_app
from tests.conftest import AUTH, TINY_PALINDROME, TINY_TEXT, count_rows

TOO_BIG = 155523155039060131840  # > 2**64: what a fuzzer sent


def queued_jobs(settings: Settings) -> int:
    with sessionmaker_for(settings.resolved_database_url)() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status == "queued")) or 0


def test_train_is_429_when_the_queue_is_full(sqlite_settings: Settings) -> None:
    limit = queued_jobs(sqlite_settings) + 1
    with TestClient(
        create_app(sqlite_settings.model_copy(update={"max_queued_jobs": limit})), headers=AUTH
    ) as c:
        assert c.post("/train", json=TINY_PALINDROME).status_code == 202
        before = count_rows(sqlite_settings)
        response = c.post("/train", json=TINY_PALINDROME)
        assert response.status_code == 429, response.text
        assert int(response.headers["retry-after"]) > 0
        assert "queued" in response.json()["detail"]
        assert count_rows(sqlite_settings) == before


def test_writes_and_generation_are_rate_limited_per_token(sqlite_settings: Settings) -> None:
    limited = sqlite_settings.model_copy(
        update={"rate_limit_per_minute": 1, "rate_limit_burst": 2, "api_tokens": SecretStr("first,second")}
    )
    first, second = ({"Authorization": f"Bearer {t}"} for t in ("first", "second"))
    with TestClient(create_app(limited)) as client:
        for _ in range(2):
            assert client.post("/jobs/999999/cancel", headers=first).status_code == 404
        response = client.post("/jobs/999999/cancel", headers=first)
        assert response.status_code == 429, response.text
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert "rate limit" in response.json()["detail"]
        assert client.post("/jobs/999999/cancel", headers=second).status_code == 404  # its own bucket
        assert client.get("/jobs").status_code == 200  # plain reads are not limited
        # The open GET /generate is limited per client address.
        statuses = [client.get("/generate", params={"job_id": 999999}).status_code for _ in range(3)]
        assert statuses == [404, 404, 429]


def test_a_job_too_large_for_the_worker_is_422_naming_the_fields(
    sqlite_settings: Settings,
) -> None:
    small = sqlite_settings.model_copy(update={"worker_memory_bytes": 50 * 2**20})
    before = count_rows(sqlite_settings)
    with TestClient(create_app(small), headers=AUTH) as client:
        assert client.post("/train", json=TINY_TEXT).status_code == 202
        big = TINY_TEXT | {"batch_size": 512, "seq_length": 512, "hidden_size": 1024}
        response = client.post("/train", json=big)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "batch_size" in detail and "seq_length" in detail and "GiB" in detail
        assert [e["loc"] for e in response.json()["errors"]][0] == ["body", "batch_size"]
    assert count_rows(sqlite_settings)["jobs"] == before["jobs"] + 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", f"/jobs/{TOO_BIG}/cancel", {}),
        ("GET", f"/jobs/{TOO_BIG}", {}),
        ("GET", f"/jobs/{TOO_BIG}/metrics", {}),
        ("GET", "/jobs?offset=1995424470630167077821463134208", {}),
        ("GET", f"/jobs/1/metrics?after_step={TOO_BIG}", {}),
        ("GET", f"/checkpoints/{2**31}", {}),
        ("GET", f"/checkpoints/{2**31}/file", {}),
        ("GET", f"/datasets/{2**31}", {}),
        ("GET", f"/generate?job_id={TOO_BIG}", {}),
        ("POST", "/generate", {"json": {"job_id": TOO_BIG}}),
        ("POST", "/predict", {"json": {"checkpoint_id": 2**31, "digits": "12"}}),
        ("POST", "/train", {"json": TINY_TEXT | {"dataset_id": 2**31}}),
        ("POST", "/train", {"json": TINY_PALINDROME | {"resume_from": TOO_BIG}}),
    ],
)
def test_integers_beyond_the_database_columns_are_422(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = client.request(method, path, **kwargs)
    assert response.status_code == 422, response.text
    assert "2147483647" in response.json()["detail"]


def test_nul_characters_never_reach_a_text_column(client: TestClient, settings: Settings) -> None:
    before = count_rows(settings)
    response = client.post("/datasets", files={"file": ("a.txt", b"abc\x00def", "text/plain")})
    assert response.status_code == 422 and "NUL" in response.json()["detail"]
    text = {"file": ("a.txt", b"abcdef", "text/plain")}
    response = client.post("/datasets", files=text, data={"name": "a\x00b"})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "name"]
    assert client.get("/jobs/1/metrics", params={"name": "val\x00loss"}).status_code == 422
    assert count_rows(settings) == before


def test_the_largest_storable_id_is_404(client: TestClient) -> None:
    assert client.get(f"/jobs/{2**31 - 1}").status_code == 404
    assert client.post(f"/jobs/{2**31 - 1}/cancel").status_code == 404
