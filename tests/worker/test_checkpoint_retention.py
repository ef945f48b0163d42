"""Checkpoint retention: a job keeps its best and its latest few; resuming still works from any kept one."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.core.tables import Job
from app.services import model_registry
from tests.conftest import TINY_PALINDROME, TINY_TEXT
from worker.lifecycle import run_job

pytestmark = pytest.mark.slow

KEEP = 2
# A checkpoint every 10 steps with validation (so `is_best` moves) at each: 6 checkpoints written.
EVERY_TEN: dict[str, Any] = {"train_steps": 60, "eval_every": 10, "checkpoint_every": 10, "log_every": 10}
MANY_CHECKPOINTS: dict[str, Any] = TINY_PALINDROME | EVERY_TEN


def checkpoints_of(client: TestClient, job_id: int) -> list[dict[str, Any]]:
    return client.get(f"/jobs/{job_id}/checkpoints").json()


def test_only_the_best_and_the_latest_are_kept(client: TestClient, settings: Settings) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = client.post("/train", json=MANY_CHECKPOINTS).json()["id"]
    written: set[int] = set()

    def note_latest_checkpoint() -> bool:  # asked once per step: never interrupts, only watches
        with sessions() as session:
            latest = session.scalar(select(Job.latest_checkpoint_id).where(Job.id == job_id))
        written.update([latest] if latest else [])
        return False

    assert run_job(job_id, sessions=sessions, keep_checkpoints=KEEP, interrupted=note_latest_checkpoint) == (
        "succeeded"
    )
    job = client.get(f"/jobs/{job_id}").json()
    kept = checkpoints_of(client, job_id)
    assert [c["step"] for c in kept][-KEEP:] == [50, 60]
    assert {c["step"] for c in kept if not c["is_best"]} <= {50, 60}
    assert [c["id"] for c in kept if c["is_best"]] == [job["best_checkpoint_id"]]
    assert job["latest_checkpoint_id"] == kept[-1]["id"]

    # The deleted ones are gone with their bytes: their ids answer 404.
    deleted = sorted(written - {c["id"] for c in kept})
    assert len(deleted) >= 6 - KEEP - 1, (written, kept)
    for checkpoint_id in deleted:
        assert client.get(f"/checkpoints/{checkpoint_id}").status_code == 404
        assert client.get(f"/checkpoints/{checkpoint_id}/file").status_code == 404
        assert client.get("/generate", params={"checkpoint_id": checkpoint_id}).status_code == 404

    # Any kept checkpoint can seed a new job, which then trains on from its step.
    oldest_kept = kept[0]
    resumed = client.post(
        "/train", json=MANY_CHECKPOINTS | {"train_steps": 80, "resume_from": oldest_kept["id"]}
    )
    assert resumed.status_code == 202, resumed.text
    assert run_job(resumed.json()["id"], sessions=sessions, keep_checkpoints=KEEP) == "succeeded"
    assert client.get(f"/jobs/{resumed.json()['id']}").json()["step"] == 80
    # A deleted one cannot.
    refused = client.post("/train", json=MANY_CHECKPOINTS | {"train_steps": 80, "resume_from": deleted[0]})
    assert refused.status_code == 404 and "resume_from" in refused.json()["detail"]


def test_a_restarted_worker_resumes_from_the_latest_kept_checkpoint(
    client: TestClient, settings: Settings
) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = client.post("/train", json=MANY_CHECKPOINTS).json()["id"]

    steps = itertools.count(1)
    interrupted = lambda: next(steps) > 35  # noqa: E731  asked once per step

    assert run_job(job_id, sessions=sessions, keep_checkpoints=KEEP, interrupted=interrupted) == "requeued"
    stopped = client.get(f"/jobs/{job_id}").json()
    assert stopped["status"] == "queued" and len(checkpoints_of(client, job_id)) <= KEEP + 1
    resume_step = next(
        c["step"] for c in checkpoints_of(client, job_id) if c["id"] == stopped["latest_checkpoint_id"]
    )

    assert run_job(job_id, sessions=sessions, keep_checkpoints=KEEP) == "succeeded"
    done = client.get(f"/jobs/{job_id}").json()
    assert done["status"] == "succeeded" and done["step"] == 60 and done["attempts"] == 2
    # One timeline: every logged step once; the interrupted attempt logged and checkpointed step 35 last.
    steps = [
        p["step"] for p in client.get(f"/jobs/{job_id}/metrics", params={"name": "loss"}).json()["items"]
    ]
    assert steps == sorted([*range(10, 61, 10), 35]) and resume_step == 35
    assert [c["step"] for c in checkpoints_of(client, job_id)][-KEEP:] == [50, 60]


def test_a_checkpoint_a_model_version_names_is_never_deleted(client: TestClient, settings: Settings) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = client.post("/train", json=MANY_CHECKPOINTS).json()["id"]
    name = f"kept-{job_id}"
    registered: list[int] = []

    def register_each_new_checkpoint() -> bool:  # asked once per step: never interrupts
        with sessions() as session:
            latest = session.scalar(select(Job.latest_checkpoint_id).where(Job.id == job_id))
            if latest is not None and latest not in registered:
                model_registry.register_version(session, name, checkpoint_id=latest)
                registered.append(latest)
        return False

    outcome = run_job(
        job_id, sessions=sessions, keep_checkpoints=KEEP, interrupted=register_each_new_checkpoint
    )
    assert outcome == "succeeded"
    # Without names, retention keeps KEEP + best of the 6 (test above); named, every one stays.
    kept = {c["id"] for c in checkpoints_of(client, job_id)}
    assert len(registered) >= 5 and set(registered) <= kept
    for version, checkpoint_id in enumerate(registered, start=1):
        assert client.get(f"/models/{name}/versions/{version}").json()["checkpoint_id"] == checkpoint_id
        assert client.get(f"/checkpoints/{checkpoint_id}/file").status_code == 200


def test_a_checkpoint_a_session_holds_is_never_deleted(client: TestClient, settings: Settings) -> None:
    sessions = sessionmaker_for(settings.resolved_database_url)
    job_id = client.post("/train", json=TINY_TEXT | EVERY_TEN).json()["id"]
    held: dict[int, str] = {}  # checkpoint id -> the session made on it

    def open_a_session_on_the_first_checkpoint() -> bool:  # asked once per step: never interrupts
        with sessions() as session:
            latest = session.scalar(select(Job.latest_checkpoint_id).where(Job.id == job_id))
        if latest is not None and not held:
            made = client.post("/sessions", json={"checkpoint_id": latest, "prompt": "the "})
            assert made.status_code == 201, made.text
            held[latest] = made.json()["id"]
        return False

    outcome = run_job(
        job_id, sessions=sessions, keep_checkpoints=KEEP, interrupted=open_a_session_on_the_first_checkpoint
    )
    assert outcome == "succeeded"
    [(first, session_id)] = held.items()
    kept = checkpoints_of(client, job_id)
    # Without the session the first checkpoint (step 10) would go: KEEP latest + best of 6.
    assert first in {c["id"] for c in kept} and kept[0]["step"] == 10
    generated = client.post(f"/sessions/{session_id}/generate", json={"length": 5, "random_seed": 1})
    assert generated.status_code == 200 and len(generated.json()["text"]) == 5
    # Once the session is gone, the next pruning deletes the checkpoint like any other.
    assert client.delete(f"/sessions/{session_id}").status_code == 204
    with sessions() as session, session.begin():
        from app.services.retention import prune_checkpoints

        deleted = prune_checkpoints(session, job_id, keep_last=KEEP)
    best = next(c["id"] for c in kept if c["is_best"])
    assert (first in deleted) == (first != best)
