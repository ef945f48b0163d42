"""`rnnlab analyze` and `rnnlab units`, run as a user runs them: subprocesses against a live
`rnnlab serve`, their tables checked against the server's own JSON answer."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, clean_env
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.slow  # a server and a worker as subprocesses

TEXT = "He said \u201cOnce upon a time\u201d and (so) on."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("xray-client")) as running:
        yield running


def rnnlab(server: LiveServer, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = clean_env(RNNLAB_URL=server.url, RNNLAB_TOKEN=server.token, COLUMNS="200")
    return subprocess.run(
        [PYTHON, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def jobs(server: LiveServer) -> dict[str, str]:
    text_job = ["--task", "text", "--dataset-id", str(server.dataset_id), "--hidden-size", "16"]
    text_job += ["--embedding-size", "8", "--num-layers", "2", "--seq-length", "16", "--batch-size", "8"]
    palindrome = [
        "--task",
        "palindrome",
        "--model",
        "phased_lstm",
        "--input-length",
        "4",
        "--hidden-size",
        "8",
    ]
    ids = {}
    for name, flags in (("text", text_job), ("palindrome", palindrome)):
        trained = rnnlab(server, "train", *flags, "--train-steps", "20", "--device", "cpu", "--wait")
        assert trained.returncode == 0, trained.stderr
        ids[name] = trained.stdout.strip()
    return ids


def test_analyze_prints_a_row_per_position_with_the_servers_values(
    server: LiveServer, jobs: dict[str, str]
) -> None:
    args = ["analyze", "--job", jobs["text"], "--text", TEXT, "--layer", "1", "--unit", "2", "--unit", "5"]
    table = rnnlab(server, *args, "--signal", "h")
    assert table.returncode == 0, table.stderr
    as_json = rnnlab(server, *args, "--json")
    with server.client() as http:
        body: dict[str, Any] = {"job_id": int(jobs["text"]), "text": TEXT, "layers": [1], "units": [2, 5]}
        expected = http.post("/analyze", json=body).json()
    answer = json.loads(as_json.stdout)
    assert answer["layers"] == expected["layers"] and answer["text"] == expected["text"]
    header, *rows = table.stdout.splitlines()
    assert "L1.2 h" in header and "L1.5 h" in header and "bits" in header
    assert len(rows) == len(TEXT)
    h = expected["layers"][0]["signals"]["h"]
    assert rows[3].split()[-2:] == [f"{h[0][3]:+.3f}", f"{h[1][3]:+.3f}"]


def test_analyze_digits_of_a_phased_lstm_shows_k(server: LiveServer, jobs: dict[str, str]) -> None:
    result = rnnlab(
        server, "analyze", "--job", jobs["palindrome"], "--digits", "1234", "--unit", "0", "--signal", "k"
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert "predicts" in header and "L0.0 k" in header and len(rows) == 4


def test_units_ranks_by_correlation(server: LiveServer, jobs: dict[str, str], tmp_path: Path) -> None:
    text_file = tmp_path / "quoted.txt"
    text_file.write_text(TEXT * 5, encoding="utf-8")
    args = [
        "units",
        "--job",
        jobs["text"],
        "--text-file",
        str(text_file),
        "--feature",
        "in_quotes",
        "--top",
        "3",
    ]
    table = rnnlab(server, *args)
    assert table.returncode == 0, table.stderr
    answer = json.loads(rnnlab(server, *args, "--json").stdout)
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["rank", "unit", "r"]
    ranked = [row.split() for row in rows[:3]]
    assert [(int(u), float(r)) for _, u, r in ranked] == [
        (u["unit"], pytest.approx(u["r"], abs=5e-4)) for u in answer["units"]
    ]
    assert "feature in_quotes" in rows[3]


def test_refusals_print_the_detail_and_exit_1(server: LiveServer, jobs: dict[str, str]) -> None:
    wrong = rnnlab(server, "analyze", "--job", jobs["palindrome"], "--text", "abc")
    assert wrong.returncode == 1 and "reads `digits`" in wrong.stderr
    regex = rnnlab(server, "units", "--job", jobs["text"], "--text", TEXT, "--regex", "[a")
    assert regex.returncode == 1 and "regex" in regex.stderr
    unit = rnnlab(server, "analyze", "--job", jobs["text"], "--text", TEXT, "--unit", "16")
    assert unit.returncode == 1 and "units" in unit.stderr
    signal = rnnlab(server, "analyze", "--job", jobs["text"], "--text", TEXT, "--signal", "k")
    assert signal.returncode == 1 and "signals" in signal.stderr and "no k" in signal.stderr


def test_usage_errors_exit_2(server: LiveServer) -> None:
    assert rnnlab(server, "analyze", "--job", "1").returncode == 2  # --text, --text-file or --digits
    assert rnnlab(server, "units", "--job", "1", "--text", "ab").returncode == 2  # --feature or --regex
