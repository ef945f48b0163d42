"""A session change that was answered survives the server being killed right after (SIGKILL, no time
to flush): with RNNLAB_SESSION_FSYNC=everysec, the default, the answer waits for the commit, not for
the disk (app/services/session_writer.py), and a killed process leaves its commits to the OS."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import (
    PYTHON,
    TINY_TEXT,
    api_client,
    clean_env,
    free_port,
    start_server,
    stop_process,
    wait_for_status,
)

pytestmark = pytest.mark.slow  # two real `rnnlab serve` processes and a training job

PROMPT = "Once upon a time"
APPENDS = [" there", " was", " a", " king"]


def test_answered_session_changes_survive_a_sigkill_of_the_server(tmp_path: Path) -> None:
    env = clean_env(
        RNNLAB_DATA_DIR=str(tmp_path / "data"),
        RNNLAB_BROKER_POLLING_INTERVAL="0.1",
        RNNLAB_SESSION_FSYNC="everysec",
        OMP_NUM_THREADS="1",
    )
    command = [PYTHON, "-m", "app.cli", "serve"]
    port = free_port()
    first = start_server([*command, "--port", str(port)], env, tmp_path / "first.log", port, new_session=True)
    try:
        with api_client(port) as api:
            job = api.post("/train", json=TINY_TEXT).json()
            job = wait_for_status(api, job["id"], "succeeded", "failed", timeout=300)
            assert job["status"] == "succeeded", job
            checkpoint_id = job["latest_checkpoint_id"]
            session = api.post("/sessions", json={"checkpoint_id": checkpoint_id, "prompt": PROMPT}).json()
            for text in APPENDS:
                answered = api.post(f"/sessions/{session['id']}/append", json={"text": text})
                assert answered.status_code == 200, answered.text
        os.killpg(first.pid, signal.SIGKILL)  # API and worker, a moment after the last answer
        first.wait(30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    port = free_port()
    second = start_server(
        [*command, "--port", str(port)], env, tmp_path / "second.log", port, new_session=True
    )
    try:
        with api_client(port) as api:
            kept = api.get(f"/sessions/{session['id']}").json()
            params = {"length": 40, "random_seed": 5, "temperature": 0.8}
            continued = api.post(f"/sessions/{session['id']}/generate", json=params).json()
            everything = PROMPT + "".join(APPENDS)
            reference = api.post(
                "/generate", json={"checkpoint_id": checkpoint_id, "prompt": everything} | params
            )
    finally:
        assert stop_process(second) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert answered.json()["session"]["characters"] == len(PROMPT + "".join(APPENDS))
    assert kept["characters"] == answered.json()["session"]["characters"]
    # The state too: an appended state is bitwise the state /generate primes for the whole text.
    assert continued["text"] == reference.json()["text"]
