"""`rnnlab serve` killed outright (SIGKILL, power loss) mid-job: the next `serve` finishes the job's story.

On the filesystem broker a task message is gone once a worker has read it, so without recovery the
job would stay `running` forever with nobody running it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import PYTHON, REPO, TINY_PALINDROME, clean_env, free_port, stop_process, wait_for

# Slow enough to be caught between checkpoints; cancelled once it has resumed.
ENDLESS_PALINDROME = TINY_PALINDROME | {
    "model": "rnn",
    "hidden_size": 8,
    "batch_size": 8,
    "train_steps": 1_000_000,
    "log_every": 10,
    "eval_every": 1_000_000,
    "checkpoint_every": 200,
}


def _serve(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = clean_env(RNNLAB_DATA_DIR=str(data_dir), RNNLAB_BROKER_POLLING_INTERVAL="0.1")
    with log_path.open("ab") as log:
        # Its own process group, so the kill below takes the worker child down with it.
        proc = subprocess.Popen(
            [PYTHON, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=120, what="rnnlab serve to be ready", interval=0.25)
    return proc


def test_job_survives_serve_being_killed(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    first = _serve(tmp_path / "data", port, log_path)
    try:
        job_id = httpx.post(f"{base}/train", json=ENDLESS_PALINDROME).json()["id"]
        checkpointed = wait_for(
            lambda: (job := httpx.get(f"{base}/jobs/{job_id}").json())["latest_checkpoint_id"] and job,
            timeout=120,
            what="a first checkpoint",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert checkpointed["status"] == "running"

    second = _serve(tmp_path / "data", port, log_path)
    try:
        checkpoint = httpx.get(f"{base}/checkpoints/{checkpointed['latest_checkpoint_id']}").json()
        resumed = wait_for(
            lambda: (
                (job := httpx.get(f"{base}/jobs/{job_id}").json())["status"] == "running"
                and job["attempts"] == 2
                and job["step"] > checkpoint["step"]
                and job
            ),
            timeout=120,
            what="the job to run again after the restart",
        )
        assert resumed["started_at"] == checkpointed["started_at"]
        assert httpx.post(f"{base}/jobs/{job_id}/cancel").status_code == 200
        final = wait_for(
            lambda: (job := httpx.get(f"{base}/jobs/{job_id}").json())["status"] == "cancelled" and job,
            timeout=120,
            what="the cancel to land",
        )
        history = httpx.get(f"{base}/jobs/{job_id}/metrics", params={"name": "loss", "limit": 1000}).json()
        steps = [m["step"] for m in history["items"]]
        # Steps between the checkpoint and the kill were trained twice, but each is stored once, and
        # none is left from the killed attempt's lost timeline past where the job really ended.
        # The loop logs every 10 steps, and once more at the step where the cancel stopped it.
        expected = list(range(10, final["step"] + 1, 10))
        if final["step"] % 10:
            expected.append(final["step"])
        assert steps == expected
        assert final["step"] > checkpoint["step"]
    finally:
        assert stop_process(second) == 0, log_path.read_text()[-3000:]
