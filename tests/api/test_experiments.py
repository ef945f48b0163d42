"""Experiments over HTTP with a real database (PostgreSQL and SQLite): grid validation, the jobs it
queues, a tiny sweep really trained in-process, its results table, CSV and figure, and cancel."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.main import create_app
from app.services.experiments import experiment_status
from tests.api.png import assert_png
from tests.conftest import AUTH, TINY_PALINDROME, TINY_TEXT, count_rows
from worker.lifecycle import run_job

# Two models x two lengths x two seeds, 20 steps each: the course figure's shape, in seconds.
SWEEP = {"model": ["rnn", "lstm"], "input_length": [3, 6], "seed": [0, 1]}
BASE = {k: v for k, v in TINY_PALINDROME.items() if k not in SWEEP} | {
    "train_steps": 20,
    "eval_every": 10,
    "checkpoint_every": 20,
}


def _stored(client: TestClient, settings: Settings) -> tuple[dict[str, int], int]:
    return count_rows(settings), client.get("/experiments").json()["total"]


def test_create_answers_202_and_queues_one_ordinary_job_per_point(client: TestClient) -> None:
    response = client.post("/experiments", json=BASE | {"name": "grid", "sweep": SWEEP})
    assert response.status_code == 202, response.text
    experiment = response.json()
    assert response.headers["location"] == f"/experiments/{experiment['id']}"
    assert experiment["status"] == "queued" and experiment["jobs"] == 8
    assert experiment["counts"] == {"queued": 8, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert experiment["sweep"] == SWEEP and experiment["name"] == "grid"
    assert not set(SWEEP) & set(experiment["base_config"])  # the axes live in the sweep only

    # Grid order: the first axis varies slowest.
    params = [row["params"] for row in experiment["results"]]
    assert params[:3] == [
        {"model": "rnn", "input_length": 3, "seed": 0},
        {"model": "rnn", "input_length": 3, "seed": 1},
        {"model": "rnn", "input_length": 6, "seed": 0},
    ]
    page = client.get(f"/jobs?experiment_id={experiment['id']}&limit=500").json()
    assert page["total"] == 8
    by_id = {job["id"]: job for job in page["items"]}
    for row in experiment["results"]:
        job = by_id[row["job_id"]]
        assert job["experiment_id"] == experiment["id"] and job["status"] == "queued"
        assert {k: job["config"][k] for k in SWEEP} == row["params"]
        assert job["config"]["train_steps"] == 20 and job["model"] == row["params"]["model"]
    # A job from POST /train belongs to no experiment and is not in the filtered list.
    plain = client.post("/train", json=TINY_PALINDROME).json()
    assert plain["experiment_id"] is None
    assert plain["id"] not in {
        j["id"] for j in client.get(f"/jobs?experiment_id={experiment['id']}").json()["items"]
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sweep": {"hidden_units": [8, 16]}}, "sweep.hidden_units"),
        ({"sweep": {"task": ["text"]}}, "sweep.task"),
        ({"sweep": {"input_length": [5, 10, 0]}}, "sweep.input_length[2]"),
        ({"sweep": {"model": ["rnn", "gru"]}}, "sweep.model[1]"),
        ({"sweep": {"seed": [0, 1, 0]}}, "sweep.seed[2]"),
        ({"sweep": {"seed": [0, 1], "learning_rate": []}}, "sweep.learning_rate"),
        ({"sweep": {}}, "sweep"),
        ({"sweep": {"seed": list(range(201))}}, "sweep"),  # the default cap is 200 jobs
        ({"sweep": {"seed": list(range(15)), "input_length": list(range(1, 15))}}, "sweep"),  # 210
        ({"input_length": 5, "sweep": {"input_length": [5, 10]}}, "sweep.input_length"),
        ({"sweep": [1, 2]}, "sweep"),
        ({"hidden_size": 0, "sweep": {"seed": [0]}}, "hidden_size"),
        ({"name": "x" * 201, "sweep": {"seed": [0]}}, "name"),
    ],
)
def test_bad_grids_are_422_naming_the_value_and_store_nothing(
    client: TestClient, settings: Settings, body: dict[str, Any], field: str
) -> None:
    before = _stored(client, settings)
    response = client.post("/experiments", json=BASE | body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert response.json()["errors"][0]["loc"][0] == "body"
    assert _stored(client, settings) == before


def test_the_cap_comes_from_settings(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_experiment_jobs": 3, "queue": f"{settings.queue}-unconsumed"})
    with TestClient(create_app(capped), headers=AUTH) as client:
        response = client.post(
            "/experiments", json=BASE | {"sweep": {"seed": [0, 1], "input_length": [3, 4]}}
        )
        assert response.status_code == 422
        assert "2 x 2 = 4 points, more than the limit of 3" in response.json()["detail"]
        assert client.post("/experiments", json=BASE | {"sweep": {"seed": [0, 1, 2]}}).status_code == 202


def test_a_bad_reference_stores_nothing(client: TestClient, settings: Settings) -> None:
    before = _stored(client, settings)
    response = client.post(
        "/experiments", json=TINY_TEXT | {"dataset_id": 999_999, "sweep": {"seed": [0, 1]}}
    )
    assert response.status_code == 404 and "dataset_id" in response.json()["detail"]
    assert _stored(client, settings) == before


def test_a_text_sweep_uses_the_builtin_dataset(client: TestClient) -> None:
    body = {k: v for k, v in TINY_TEXT.items() if k != "hidden_size"} | {"sweep": {"hidden_size": [8, 16]}}
    experiment = client.post("/experiments", json=body).json()
    assert experiment["task"] == "text" and [r["params"] for r in experiment["results"]] == [
        {"hidden_size": 8},
        {"hidden_size": 16},
    ]
    job = client.get(f"/jobs/{experiment['results'][0]['job_id']}").json()
    assert job["dataset_id"] is not None and job["model"] == "char_lstm"


@pytest.fixture(scope="module")
def trained(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    """The 8-job sweep, every job trained in-process to its end (no worker process)."""
    experiment = client.post("/experiments", json=BASE | {"name": "course", "sweep": SWEEP}).json()
    sessions = sessionmaker_for(settings.resolved_database_url)
    for row in experiment["results"]:
        assert run_job(row["job_id"], sessions=sessions) == "succeeded"
    yield client.get(f"/experiments/{experiment['id']}").json()


@pytest.mark.slow
def test_results_of_a_trained_sweep(client: TestClient, trained: dict[str, Any]) -> None:
    assert trained["status"] == "succeeded" and trained["counts"]["succeeded"] == 8
    for row in trained["results"]:
        final = row["final_metrics"]
        assert row["status"] == "succeeded" and row["step"] == 20
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(final)
        # Best over the history (steps 10 and 20), so never worse than the last value.
        assert 0 <= final["val_accuracy"] <= row["best_val_accuracy"] <= 1
        assert row["best_val_loss"] <= final["val_loss"]
        history = client.get(f"/jobs/{row['job_id']}/metrics?name=val_accuracy").json()["items"]
        assert row["best_val_accuracy"] == max(point["value"] for point in history)
    listed = client.get("/experiments?limit=500").json()["items"]
    summary = next(e for e in listed if e["id"] == trained["id"])
    assert summary["status"] == "succeeded" and summary["jobs"] == 8 and "results" not in summary


@pytest.mark.slow
def test_results_csv_is_the_same_table(client: TestClient, trained: dict[str, Any]) -> None:
    response = client.get(f"/experiments/{trained['id']}/results.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    header = list(rows[0])
    assert header[:8] == [*SWEEP, "job_id", "status", "step", "best_val_loss", "best_val_accuracy"]
    assert {"final_loss", "final_val_accuracy"} <= set(header)
    assert len(rows) == 8
    for row, result in zip(rows, trained["results"], strict=True):
        assert int(row["job_id"]) == result["job_id"] and row["status"] == "succeeded"
        assert [row[axis] for axis in SWEEP] == [str(v) for v in result["params"].values()]
        assert float(row["final_val_accuracy"]) == result["final_metrics"]["val_accuracy"]
        assert float(row["best_val_loss"]) == result["best_val_loss"]


@pytest.mark.slow
def test_the_accuracy_against_length_figure(client: TestClient, trained: dict[str, Any]) -> None:
    url = f"/experiments/{trained['id']}/plot.png"
    response = client.get(url, params={"metric": "val_accuracy", "x": "input_length", "hue": "model"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert_png(response.content)
    for metric in ("best_val_accuracy", "val_loss"):
        assert_png(client.get(url, params={"metric": metric, "x": "seed"}).content)
    # A categorical x axis: one point per model.
    assert_png(client.get(url, params={"x": "model", "hue": "input_length"}).content)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "hidden_size"}, "x"),
        ({"x": "input_length", "hue": "learning_rate"}, "hue"),
        ({"x": "input_length", "hue": "input_length"}, "hue"),
        ({"x": "input_length", "metric": "perplexity"}, "metric"),
        ({}, "x"),
    ],
)
def test_figure_parameters_are_checked(client: TestClient, params: dict[str, str], field: str) -> None:
    experiment = client.post("/experiments", json=BASE | {"sweep": SWEEP}).json()
    response = client.get(f"/experiments/{experiment['id']}/plot.png", params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_cancel_cancels_the_unfinished_jobs(client: TestClient, settings: Settings) -> None:
    experiment = client.post("/experiments", json=BASE | {"sweep": {"seed": [0, 1, 2]}}).json()
    first, *rest = (row["job_id"] for row in experiment["results"])
    assert run_job(first, sessions=sessionmaker_for(settings.resolved_database_url)) == "succeeded"

    response = client.post(f"/experiments/{experiment['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 2}
    assert cancelled["status"] == "partial"
    assert [client.get(f"/jobs/{job_id}").json()["status"] for job_id in rest] == ["cancelled", "cancelled"]
    again = client.post(f"/experiments/{experiment['id']}/cancel")
    assert again.status_code == 409 and "no queued or running job" in again.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/experiments/999999",
        "/experiments/999999/results.csv",
        "/experiments/999999/plot.png?x=seed",
    ],
)
def test_unknown_experiments_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and "experiment 999999" in response.json()["detail"]
    assert client.post("/experiments/999999/cancel").status_code == 404


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({"queued": 3}, "queued"),
        ({"queued": 2, "running": 1}, "running"),
        ({"queued": 2, "succeeded": 1}, "running"),
        ({"succeeded": 3}, "succeeded"),
        ({"succeeded": 2, "failed": 1}, "partial"),
        ({"succeeded": 1, "cancelled": 2}, "partial"),
        ({"failed": 1, "cancelled": 2}, "failed"),
        ({"cancelled": 3}, "cancelled"),
    ],
)
def test_experiment_status_from_its_jobs(counts: dict[str, int], status: str) -> None:
    every = dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0)
    assert experiment_status(every | counts) == status


@pytest.mark.slow  # the broker client retries its connection before it gives up
def test_an_unreachable_broker_leaves_every_job_queued_for_the_sweep(settings: Settings) -> None:
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken), headers=AUTH) as client:
        response = client.post("/experiments", json=BASE | {"sweep": {"seed": [0, 1, 2]}})
        # Stored first (the outbox): a worker's sweep sends the jobs once the broker is back.
        assert response.status_code == 202, response.text
        experiment = client.get("/experiments?limit=1").json()["items"][0]
        assert experiment["status"] == "queued" and experiment["counts"]["queued"] == 3


# Named recipes crossed with a sweep: the extended course figure's shape (issue 20), in seconds.
VARIANTS = {"rnn": {"model": "rnn"}, "lstm": {}, "lstm_chrono_sgd": {"init": "chrono", "optimizer": "sgd"}}


@pytest.mark.slow
def test_variants_cross_the_sweep_as_its_slowest_axis(client: TestClient, settings: Settings) -> None:
    body = BASE | {"variants": VARIANTS, "sweep": {"input_length": [3, 6]}}
    response = client.post("/experiments", json=body)
    assert response.status_code == 202, response.text
    experiment = response.json()
    assert experiment["jobs"] == 6 and experiment["variants"] == VARIANTS
    assert experiment["sweep"] == {"variant": list(VARIANTS), "input_length": [3, 6]}
    params = [row["params"] for row in experiment["results"]]
    assert params == [{"variant": v, "input_length": n} for v in VARIANTS for n in (3, 6)]
    for row in experiment["results"]:
        config = client.get(f"/jobs/{row['job_id']}").json()["config"]
        fields = VARIANTS[row["params"]["variant"]]
        # The variant's fields over the base, the base's where the variant says nothing.
        assert config["model"] == fields.get("model", BASE.get("model", "lstm"))
        assert config["init"] == fields.get("init", "default")
        assert config["optimizer"] == fields.get("optimizer", BASE.get("optimizer", "rmsprop"))
        assert config["input_length"] == row["params"]["input_length"]

    # Trained in-process, then the table, the CSV and the figure with one line per variant.
    sessions = sessionmaker_for(settings.resolved_database_url)
    for row in experiment["results"]:
        assert run_job(row["job_id"], sessions=sessions) == "succeeded"
    done = client.get(f"/experiments/{experiment['id']}").json()
    assert done["status"] == "succeeded" and [r["params"] for r in done["results"]] == params
    rows = list(csv.DictReader(io.StringIO(client.get(f"/experiments/{experiment['id']}/results.csv").text)))
    assert [(r["variant"], int(r["input_length"])) for r in rows] == [
        (p["variant"], p["input_length"]) for p in params
    ]
    figure = client.get(
        f"/experiments/{experiment['id']}/plot.png",
        params={"metric": "best_val_accuracy", "x": "input_length", "hue": "variant"},
    )
    assert figure.status_code == 200, figure.text
    assert_png(figure.content)


def test_variants_alone_make_one_job_each(client: TestClient) -> None:
    experiment = client.post(
        "/experiments", json=BASE | {"variants": {"a": {}, "b": {"hidden_size": 4}}}
    ).json()
    assert experiment["sweep"] == {"variant": ["a", "b"]}
    assert [row["params"] for row in experiment["results"]] == [{"variant": "a"}, {"variant": "b"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"variants": {}}, "variants"),
        ({"variants": {"bad name": {}}}, "variants.bad name"),
        ({"variants": {"a": {"hidden_units": 8}}}, "variants.a.hidden_units"),
        ({"variants": {"a": {"task": "text"}}}, "variants.a.task"),
        ({"variants": {"a": {"hidden_size": 0}}}, "variants.a.hidden_size"),
        ({"variants": {"a": {"init": "identity"}}}, "variants.a.init"),  # lstm takes no identity
        ({"variants": {"a": {"seed": 1}}, "sweep": {"seed": [0, 1]}}, "variants.a.seed"),
        ({"variants": {"a": {}, "b": {"model": "lstm"}}}, "variants.b"),  # the same job as a
        ({"variants": {f"v{i}": {"seed": i} for i in range(21)}}, "variants"),
        ({"variants": {"a": {}}, "sweep": {"variant": ["x"]}}, "sweep.variant"),
        ({"variants": {"a": {}, "b": {"seed": 1}}, "sweep": {"input_length": list(range(1, 102))}}, "sweep"),
        ({"variants": [{"model": "rnn"}]}, "variants"),
    ],
)
def test_bad_variants_are_422_naming_the_field_and_store_nothing(
    client: TestClient, settings: Settings, body: dict[str, Any], field: str
) -> None:
    before = _stored(client, settings)
    response = client.post("/experiments", json=BASE | body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert _stored(client, settings) == before
