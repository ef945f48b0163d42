"""app/observability/: request metrics by route template, scrape-time collectors, generation counters."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import observability
from app.core.db import engine_for, migrate
from app.core.settings import Settings
from app.core.tables import Job
from app.observability import collectors, metrics
from tests.conftest import REDIS_URL


def sample(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0", queue="q")
    migrate(settings.resolved_database_url)
    return settings


def make_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings

    @app.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict:
        return {"id": thing_id}

    observability.install_observability(app)
    return app


def add_job(session: Session, status: str, step: int = 0, rate: float | None = None) -> int:
    job = Job(task="palindrome", model="lstm", status=status, config={}, step=step, total_steps=100)
    job.steps_per_second = rate
    session.add(job)
    session.flush()
    return job.id


def test_metrics_by_route_template_and_jobs_from_database(sqlite_settings: Settings) -> None:
    with Session(engine_for(sqlite_settings.resolved_database_url)) as session, session.begin():
        running = add_job(session, "running", step=30, rate=12.5)
        add_job(session, "succeeded")
        add_job(session, "succeeded")
    client = TestClient(make_app(sqlite_settings))
    for i in range(3):
        assert client.get(f"/things/{i}").status_code == 200
    assert client.get("/nowhere/at/all").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.text
    requests = "rnnlab_http_requests_total"
    # One series per route template, whatever the ids were.
    assert sample(body, requests, 'method="GET",route="/things/{thing_id}",status="200"') >= 3
    assert sample(body, requests, 'method="GET",route="<unmatched>",status="404"') >= 1
    assert "/things/1" not in body
    assert sample(body, "rnnlab_jobs", 'status="succeeded"') == 2
    assert sample(body, "rnnlab_jobs", 'status="queued"') == 0
    assert sample(body, "rnnlab_training_steps_per_second", f'job_id="{running}"') == 12.5
    assert sample(body, "rnnlab_training_step", f'job_id="{running}"') == 30


def test_metrics_survive_broker_and_database_down(tmp_path: Path) -> None:
    # No migrations (no tables) and nothing listening on the broker port: both sources fail.
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0", queue="q")
    client = TestClient(make_app(settings))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert sample(response.text, "rnnlab_scrape_errors_total", 'source="broker"') == 1
    assert sample(response.text, "rnnlab_scrape_errors_total", 'source="database"') == 1
    assert "rnnlab_queue_depth{" not in response.text


def test_queue_depth_counts_redis_priority_lists() -> None:
    queue = f"obs_{secrets.token_hex(4)}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.rpush(queue, "a", "b")
        client.rpush(f"{queue}\x06\x163", "c")
        assert collectors.queue_depth(REDIS_URL, queue) == 3
    finally:
        client.delete(queue, f"{queue}\x06\x163")
        client.close()


def test_queue_depth_counts_filesystem_messages(tmp_path: Path) -> None:
    for name in ("1_a.q.msg", "2_b.q.msg", "3_c.other.msg"):
        (tmp_path / name).write_text("{}")
    assert collectors.queue_depth("filesystem://", "q", {"data_folder_in": str(tmp_path)}) == 2


def test_observe_generation() -> None:
    before = metrics.GENERATED_CHARS._value.get()
    observability.observe_generation(50, 0.25)
    assert metrics.GENERATED_CHARS._value.get() == before + 50
    with pytest.raises(ValueError):
        observability.observe_generation(-1, 1.0)
