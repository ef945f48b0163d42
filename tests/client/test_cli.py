"""`rnnlab train | generate | experiment | jobs | workers | cancel`, run as a user runs them:
subprocesses against a live `rnnlab serve`, with the URL and token from the environment."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYTHON, clean_env
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.slow  # a server and a worker as subprocesses

TINY_PALINDROME = ["--task", "palindrome", "--model", "lstm", "--input-length", "4", "--hidden-size", "16"]
TINY_PALINDROME += ["--batch-size", "16", "--train-steps", "30", "--eval-every", "30", "--device", "cpu"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("client")) as running:
        yield running


def rnnlab(server: LiveServer, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = clean_env(RNNLAB_URL=server.url, RNNLAB_TOKEN=server.token, COLUMNS="200")
    return subprocess.run(
        [PYTHON, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def start(server: LiveServer, *args: str) -> subprocess.Popen[str]:
    env = clean_env(RNNLAB_URL=server.url, RNNLAB_TOKEN=server.token, COLUMNS="200")
    cmd = [PYTHON, "-m", "app.cli", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_train_wait_follows_the_job_to_the_end(server: LiveServer) -> None:
    result = rnnlab(server, "train", *TINY_PALINDROME, "--wait")
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout.strip())
    assert "100%" in result.stderr and "step 30/30" in result.stderr
    assert f"job {job_id} succeeded" in result.stderr
    with server.client() as http:
        job = http.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["config"]["input_length"] == 4 and job["config"]["hidden_size"] == 16

    listing = rnnlab(server, "jobs", "--status", "succeeded")
    assert listing.returncode == 0, listing.stderr
    assert any(
        line.split("│")[1].strip() == str(job_id) for line in listing.stdout.splitlines() if "│" in line
    )


def test_generate_prints_the_continuation(server: LiveServer) -> None:
    text_job = ["--task", "text", "--dataset-id", str(server.dataset_id), "--hidden-size", "16"]
    text_job += ["--embedding-size", "8", "--num-layers", "1", "--seq-length", "16", "--batch-size", "8"]
    trained = rnnlab(server, "train", *text_job, "--train-steps", "20", "--device", "cpu", "--wait")
    assert trained.returncode == 0, trained.stderr
    job_id = trained.stdout.strip()

    args = ["generate", "--job", job_id, "--prompt", "Once ", "--length", "50", "--random-seed", "3"]
    first, again = rnnlab(server, *args), rnnlab(server, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Once ") and len(first.stdout.rstrip("\n")) == len("Once ") + 50
    assert again.stdout == first.stdout  # the same random seed, the same text

    # By a model name, and by the flag's old name, --seed-text: the same text.
    with server.client() as http:
        checkpoint_id = http.get(f"/jobs/{job_id}").json()["latest_checkpoint_id"]
        http.post("/models/cli-tales/versions", json={"checkpoint_id": checkpoint_id}).raise_for_status()
    named = [
        "generate",
        "--model",
        "cli-tales",
        "--seed-text",
        "Once ",
        "--length",
        "50",
        "--random-seed",
        "3",
    ]
    assert rnnlab(server, *named).stdout == first.stdout

    # The timeline: its last row is the latest checkpoint's sample, the text `generate` printed.
    timeline = rnnlab(server, "timeline", job_id, "--prompt", "Once ", "--length", "50", "--random-seed", "3")
    assert timeline.returncode == 0, timeline.stderr
    assert first.stdout.rstrip("\n").replace("\n", "↵") in timeline.stdout
    assert "random_seed 3" in timeline.stderr
    with server.client() as http:
        table = http.get(
            f"/jobs/{job_id}/timeline", params={"prompt": "Once ", "length": 50, "random_seed": 3}
        )
    for row in table.json()["rows"]:
        assert re.search(rf"│\s*{row['step']}\s*│", timeline.stdout), timeline.stdout

    horizon = rnnlab(server, "horizon", job_id, "--max-lag", "8", "--windows", "4")
    assert horizon.returncode == 0, horizon.stderr
    with server.client() as http:
        measured = http.get(f"/jobs/{job_id}/memory-horizon", params={"max_lag": 8, "windows": 4}).json()
    assert all(f"{norm:.4e}" in horizon.stdout for norm in measured["mean_norm"])
    assert "mean over 4 positions of the validation text" in horizon.stderr


def test_a_cancelled_job_exits_non_zero(server: LiveServer) -> None:
    long_job = [*TINY_PALINDROME, "--train-steps", "1000000"]  # the last flag wins
    waiting = start(server, "train", *long_job, "--wait")
    try:
        assert waiting.stdout is not None
        job_id = int(waiting.stdout.readline())  # printed as soon as the job is queued
        cancelled = rnnlab(server, "cancel", str(job_id))
        assert cancelled.returncode == 0, cancelled.stderr
        assert waiting.wait(timeout=180) == 1
    finally:
        waiting.kill()
        waiting.wait()
    assert f"job {job_id} cancelled" in (waiting.stderr.read() if waiting.stderr else "")

    again = rnnlab(server, "cancel", str(job_id))
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"error: job {job_id} is already cancelled; only queued or running jobs can be cancelled"
    )


def test_server_refusals_print_the_detail_and_exit_1(server: LiveServer) -> None:
    bad = rnnlab(server, "train", "--task", "palindrome", "--model", "transformer")
    assert bad.returncode == 1
    assert "error: body.palindrome.model: Input should be 'rnn', 'lstm' or 'phased_lstm'" in bad.stderr
    missing = rnnlab(server, "generate", "--job", "999999", "--length", "5")
    assert missing.returncode == 1 and "job 999999 not found" in missing.stderr
    # The client keeps no list of statuses: the server checks the value and names the ones it has.
    status = rnnlab(server, "jobs", "--status", "finished")
    assert status.returncode == 1
    assert (
        "error: query.status: Input should be 'queued', 'running', 'succeeded', 'failed' or 'cancelled'"
        in (status.stderr)
    )


def test_usage_errors_exit_2(server: LiveServer) -> None:
    assert rnnlab(server, "train", "--model", "lstm").returncode == 2  # --task is required
    assert rnnlab(server, "generate", "--seed-text", "x").returncode == 2  # --job or --checkpoint
    assert rnnlab(server, "experiment", "--task", "palindrome", "--sweep", "model").returncode == 2


def test_an_unreachable_server_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    down = LiveServer(url="http://127.0.0.1:9", token="x", data_dir=tmp_path, dataset_id=1)
    result = rnnlab(down, "jobs")
    assert result.returncode == 1
    assert (
        result.stderr.startswith("error: cannot reach http://127.0.0.1:9")
        and "Traceback" not in result.stderr
    )


def test_experiment_wait_prints_its_results_table(server: LiveServer) -> None:
    base = ["--task", "palindrome", "--hidden-size", "16", "--batch-size", "16", "--train-steps", "30"]
    base += ["--eval-every", "30", "--device", "cpu"]  # the swept fields stay out of the base config
    args = ["experiment", *base, "--sweep", "model=rnn,lstm", "--sweep", "input-length=3,4"]
    result = rnnlab(server, *args, "--name", "cli", "--wait", timeout=300)
    assert result.returncode == 0, result.stderr
    experiment_id = int(result.stdout.splitlines()[0])
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]  # the table's body
    assert len(rows) == 4 and all("succeeded" in row for row in rows), result.stdout
    assert f"experiment {experiment_id} succeeded" in result.stderr


def test_workers_lists_the_serve_worker_with_the_job_it_finished(server: LiveServer) -> None:
    finished = rnnlab(server, "train", *TINY_PALINDROME, "--wait")
    assert finished.returncode == 0, finished.stderr
    job_id = int(finished.stdout.strip())
    with server.client() as http:
        (attempt,) = http.get(f"/jobs/{job_id}").json()["attempt_history"]
        (worker,) = http.get("/workers").json()
    # The attempt names the worker `serve` runs, as that worker names itself.
    assert attempt["worker"] == worker["name"] and attempt["outcome"] == "succeeded"
    assert worker["queue"] == "rnnlab" and worker["device"] == "cpu" and worker["alive"]

    listing = rnnlab(server, "workers")
    assert listing.returncode == 0, listing.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in listing.stdout.splitlines()
        if "│" in line
    ]
    (header,) = [line for line in listing.stdout.splitlines() if "┃" in line]  # rich's heavy header rule
    columns = [cell.strip() for cell in header.split("┃")[1:-1]]
    assert columns == ["name", "queue", "device", "alive", "heartbeat", "job", "finished"]
    (row,) = rows
    assert row[:4] == [worker["name"], "rnnlab", "cpu", "yes"]
    assert int(row[6]) >= 1 and "1 live of 1 workers" in listing.stdout


def test_session_commands_keep_fork_and_continue_a_state(server: LiveServer) -> None:
    text_job = ["--task", "text", "--dataset-id", str(server.dataset_id), "--hidden-size", "16"]
    text_job += ["--embedding-size", "8", "--num-layers", "1", "--seq-length", "16", "--batch-size", "8"]
    trained = rnnlab(server, "train", *text_job, "--train-steps", "20", "--device", "cpu", "--wait")
    assert trained.returncode == 0, trained.stderr
    job_id = trained.stdout.strip()

    made = rnnlab(server, "session", "new", "--job", job_id, "--prompt", "Once ")
    assert made.returncode == 0, made.stderr
    session_id = made.stdout.strip()
    appended = rnnlab(server, "session", "append", session_id, "upon")
    assert appended.returncode == 0, appended.stderr
    assert float(appended.stdout) > 0  # bits per character of "upon"
    forked = rnnlab(server, "session", "fork", session_id)
    assert forked.returncode == 0, forked.stderr
    fork_id = forked.stdout.strip()
    assert fork_id != session_id

    args = ["--length", "40", "--random-seed", "9", "--temperature", "0.8"]
    from_session = rnnlab(server, "session", "generate", session_id, *args)
    from_fork = rnnlab(server, "session", "generate", fork_id, *args)
    assert from_session.returncode == 0, from_session.stderr
    assert len(from_session.stdout.rstrip("\n")) == 40
    assert from_fork.stdout == from_session.stdout  # a fork continues as the original does
    # What /generate gives for everything the session consumed, with the same seed.
    generated = rnnlab(server, "generate", "--job", job_id, "--prompt", "Once upon", *args)
    assert generated.stdout == "Once upon" + from_session.stdout

    clamped = rnnlab(
        server, "session", "clamp", session_id, "--layer", "0", "--unit", "1", "--value", "2", "--steps", "5"
    )
    assert clamped.returncode == 0, clamped.stderr
    shown = rnnlab(server, "session", "show", session_id)
    assert f"{len('Once upon') + 40} characters" in shown.stdout and "c[0][1]=2 x5" in shown.stdout
    assert session_id in rnnlab(server, "session", "list").stdout
    out_of_range = rnnlab(
        server, "session", "clamp", session_id, "--layer", "3", "--unit", "0", "--value", "1", "--steps", "1"
    )
    assert out_of_range.returncode == 1 and "layer" in out_of_range.stderr
    assert rnnlab(server, "session", "delete", session_id).returncode == 0
    gone = rnnlab(server, "session", "show", session_id)
    assert gone.returncode == 1 and "not found" in gone.stderr
