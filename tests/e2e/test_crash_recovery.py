"""`rnnlab serve` killed outright (SIGKILL, power loss) mid-job: the next `serve` finishes the job's story.

On the filesystem broker a task message is gone once a worker has read it, so without recovery the
job would stay `running` forever with nobody running it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    ENDLESS_PALINDROME,
    PYTHON,
    api_client,
    clean_env,
    free_port,
    start_server,
    stop_process,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.slow  # `rnnlab serve` as a subprocess, killed and restarted


def _serve(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = clean_env(RNNLAB_DATA_DIR=str(data_dir), RNNLAB_BROKER_POLLING_INTERVAL="0.1")
    cmd = [PYTHON, "-m", "app.cli", "serve", "--port", str(port)]
    # Its own process group, so the kill below takes the worker child down with it.
    return start_server(cmd, env, log_path, port, new_session=True)


def test_job_survives_serve_being_killed(tmp_path: Path) -> None:
    port = free_port()
    api = api_client(port)
    log_path = tmp_path / "serve.log"
    first = _serve(tmp_path / "data", port, log_path)
    try:
        job_id = api.post("/train", json=ENDLESS_PALINDROME).json()["id"]
        checkpointed = wait_for(
            lambda: (job := api.get(f"/jobs/{job_id}").json())["latest_checkpoint_id"] and job,
            timeout=120,
            what="a first checkpoint",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert checkpointed["status"] == "running"

    second = _serve(tmp_path / "data", port, log_path)
    try:
        checkpoint = api.get(f"/checkpoints/{checkpointed['latest_checkpoint_id']}").json()
        resumed = wait_for(
            lambda: (
                (job := api.get(f"/jobs/{job_id}").json())["status"] == "running"
                and job["attempts"] == 2
                and job["step"] > checkpoint["step"]
                and job
            ),
            timeout=120,
            what="the job to run again after the restart",
        )
        assert resumed["started_at"] == checkpointed["started_at"]
        assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
        final = wait_for_status(api, job_id, "cancelled", timeout=120)
        history = api.get(f"/jobs/{job_id}/metrics", params={"name": "loss", "limit": 1000}).json()
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
        api.close()
        assert stop_process(second) == 0, log_path.read_text()[-3000:]
