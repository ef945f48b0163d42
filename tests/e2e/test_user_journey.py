"""The real stack over HTTP, as a user drives it: a uvicorn server and a worker, both subprocesses.

(a) PostgreSQL + Redis with `rnnlab api` and a Celery worker; (b) the embedded default, `rnnlab serve`
(SQLite + the filesystem broker, one command).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import torch

from app.core.settings import Settings
from tests.conftest import (
    PYTHON,
    TINY_PALINDROME,
    TINY_TEXT,
    api_client,
    clean_env,
    free_port,
    settings_env,
    start_server,
    stop_process,
    wait_for,
    wait_for_status,
)
from tests.data import GRIMMS_EXCERPT

pytestmark = pytest.mark.slow  # servers and workers as subprocesses, driven over HTTP


@pytest.fixture(scope="module", params=["postgres-redis", "embedded"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port = free_port()
    logs = tmp_path_factory.mktemp("e2e-logs")
    if request.param == "postgres-redis":
        settings: Settings = request.getfixturevalue("pg_settings")
        request.getfixturevalue("pg_worker")  # a real worker on the same database and queue
        cmd = [PYTHON, "-m", "app.cli", "api", "--port", str(port)]
        env = settings_env(settings)
    else:
        cmd = [PYTHON, "-m", "app.cli", "serve", "--port", str(port)]
        env = clean_env(
            RNNLAB_DATA_DIR=str(tmp_path_factory.mktemp("embedded")), RNNLAB_BROKER_POLLING_INTERVAL="0.1"
        )
    proc = start_server(cmd, env, logs / "server.log", port)
    try:
        with api_client(port) as client:
            yield client
    finally:
        # `serve` stops its worker before it exits, so exit code 0 means both stopped; `api` exits
        # the way uvicorn does, by re-raising the SIGTERM it handled.
        expected = 0 if request.param == "embedded" else -15
        assert stop_process(proc) == expected, (logs / "server.log").read_text()[-3000:]


def test_train_watch_generate_cancel_resume(api: httpx.Client) -> None:
    text = GRIMMS_EXCERPT.read_text(encoding="utf-8")[5_000:55_000]  # past the header and contents
    upload = api.post(
        "/datasets", files={"file": ("grimm.txt", text.encode(), "text/plain")}, data={"name": "grimm"}
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()
    assert dataset["characters"] == 50_000

    # Train a tiny char-LSTM to completion and read what it recorded.
    created = api.post("/train", json=TINY_TEXT | {"dataset_id": dataset["id"]})
    assert created.status_code == 202, created.text
    job = wait_for_status(api, created.json()["id"], "succeeded", "failed", timeout=180)
    assert job["status"] == "succeeded", job["error"]
    assert job["step"] == 40 and job["progress"] == 1 and "val_loss" in job["latest_metrics"]
    loss = api.get(f"/jobs/{job['id']}/metrics", params={"name": "loss"}).json()
    assert [m["step"] for m in loss["items"]] == [10, 20, 30, 40] and loss["next_after_step"] is None
    first_page = api.get(f"/jobs/{job['id']}/metrics", params={"limit": 10}).json()
    rest = api.get(f"/jobs/{job['id']}/metrics", params={"after_step": first_page["next_after_step"]}).json()
    assert min(m["step"] for m in rest["items"]) > first_page["next_after_step"]
    samples = api.get(f"/jobs/{job['id']}/samples").json()
    assert {s["step"] for s in samples} == {20, 40} and all(len(s["text"]) == 20 for s in samples)

    # Generation is reproducible with a fixed random seed, by GET and by POST.
    params = {"job_id": job["id"], "seed": "The king", "length": 80, "temperature": 0.8, "random_seed": 7}
    first, second = api.get("/generate", params=params).json(), api.get("/generate", params=params).json()
    assert first["text"] == second["text"] and len(first["text"]) == 80
    assert first["checkpoint_id"] == job["latest_checkpoint_id"] and first["finish_reason"] == "length"
    assert api.post("/generate", json=params).json()["text"] == first["text"]
    assert "random_seed" in api.get("/generate", params={"job_id": job["id"], "length": 5}).json()
    unknown = api.get("/generate", params={"job_id": job["id"], "seed": "Grüße ☃"})
    assert unknown.status_code == 422 and "☃" in unknown.json()["detail"]
    assert unknown.json()["errors"][0]["loc"] == ["query", "seed"]
    download = api.get(f"/checkpoints/{job['latest_checkpoint_id']}/file")
    assert download.headers["content-disposition"].endswith('.pt"')
    ckpt = torch.load(__import__("io").BytesIO(download.content), weights_only=True)
    assert ckpt["step"] == 40 and ckpt["task"] == "text"

    # Cancel a long job while it runs: it stops with a final checkpoint...
    long_job = api.post(
        "/train",
        json=TINY_TEXT | {"dataset_id": dataset["id"], "train_steps": 100_000, "eval_every": 100_000},
    ).json()
    wait_for(
        lambda: api.get(f"/jobs/{long_job['id']}").json()["step"] > 5, timeout=120, what="the long job to run"
    )
    assert api.post(f"/jobs/{long_job['id']}/cancel").status_code == 200
    cancelled = wait_for_status(api, long_job["id"], "cancelled", "failed", "succeeded", timeout=60)
    assert cancelled["status"] == "cancelled" and cancelled["latest_checkpoint_id"] is not None
    checkpoint = api.get(f"/checkpoints/{cancelled['latest_checkpoint_id']}").json()
    assert checkpoint["is_final"] and checkpoint["step"] == cancelled["step"]

    # ...from which a new job resumes.
    resumed = api.post(
        "/train",
        json=TINY_TEXT
        | {
            "dataset_id": dataset["id"],
            "resume_from": checkpoint["id"],
            "train_steps": checkpoint["step"] + 20,
        },
    ).json()
    resumed = wait_for_status(api, resumed["id"], "succeeded", "failed", timeout=180)
    assert resumed["status"] == "succeeded", resumed["error"]
    assert resumed["step"] == checkpoint["step"] + 20
    conflict = api.post("/train", json=TINY_TEXT | {"hidden_size": 32, "resume_from": checkpoint["id"]})
    assert conflict.status_code == 409 and "hidden_size" in conflict.json()["detail"]
    # Refused before it is queued, not accepted and then failed by the worker.
    conflict = api.post("/train", json=TINY_TEXT | {"optimizer": "adam", "resume_from": checkpoint["id"]})
    assert conflict.status_code == 409 and "cannot resume with 'adam'" in conflict.json()["detail"]


def test_palindrome_and_predict(api: httpx.Client) -> None:
    job = api.post("/train", json=TINY_PALINDROME).json()
    job = wait_for_status(api, job["id"], "succeeded", "failed", timeout=180)
    assert job["status"] == "succeeded", job["error"]
    prediction = api.post("/predict", json={"job_id": job["id"], "digits": "12345"}).json()
    assert 0 <= prediction["predicted_digit"] <= 9 and abs(sum(prediction["probabilities"]) - 1) < 1e-4
    wrong = api.post("/predict", json={"job_id": job["id"], "digits": "123"})
    assert wrong.status_code == 422 and "digits" in wrong.json()["detail"]
    text_only = api.get("/generate", params={"job_id": job["id"]})
    assert text_only.status_code == 409 and "POST /predict" in text_only.json()["detail"]
