"""Named models over HTTP, on PostgreSQL and SQLite: versions, aliases, history, and generation by name."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from app.core.db import sessionmaker_for
from app.core.settings import Settings
from app.main import create_app
from tests.conftest import AUTH, TINY_TEXT
from worker.tasks import run_job


@pytest.fixture(scope="module")
def checkpoints(client: TestClient, settings: Settings) -> Iterator[list[int]]:
    """The two checkpoints (steps 20 and 40) of a tiny text job trained in-process."""
    job = client.post("/train", json=TINY_TEXT).json()
    assert run_job(job["id"], sessions=sessionmaker_for(settings.resolved_database_url)) == "succeeded"
    ids = [c["id"] for c in client.get(f"/jobs/{job['id']}/checkpoints").json()]
    assert len(ids) == 2
    yield ids


def fresh_name() -> str:
    return f"tales-{uuid4().hex[:8]}"


def register(client: TestClient, name: str, checkpoint_id: int) -> dict[str, Any]:
    response = client.post(f"/models/{name}/versions", json={"checkpoint_id": checkpoint_id})
    assert response.status_code == 201, response.text
    return response.json()


def generated_from(client: TestClient, model: str) -> int:
    response = client.post("/generate", json={"model": model, "length": 5, "random_seed": 1})
    assert response.status_code == 200, response.text
    return int(response.json()["checkpoint_id"])


def test_versions_are_numbered_and_latest_follows_the_newest(
    client: TestClient, checkpoints: list[int]
) -> None:
    name = fresh_name()
    first = register(client, name, checkpoints[0])
    assert (
        first["version"] == 1 and first["checkpoint_id"] == checkpoints[0] and first["aliases"] == ["latest"]
    )
    assert first["task"] == "text" and first["step"] == 20
    second = register(client, name, checkpoints[1])
    assert second["version"] == 2

    model = client.get(f"/models/{name}").json()
    assert model["latest_version"] == 2 and model["version_count"] == 2
    assert model["aliases"] == {"latest": 2}
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert name in [m["name"] for m in client.get("/models").json()]

    assert generated_from(client, name) == checkpoints[1]
    assert generated_from(client, f"{name}:1") == checkpoints[0]
    assert generated_from(client, f"{name}@latest") == checkpoints[1]


def test_an_alias_moves_for_the_next_request_and_every_move_is_recorded(
    client: TestClient, checkpoints: list[int]
) -> None:
    name = fresh_name()
    register(client, name, checkpoints[0])
    register(client, name, checkpoints[1])

    set_first = client.put(f"/models/{name}/aliases/champion", json={"version": 1})
    assert set_first.status_code == 200, set_first.text
    assert set_first.json()["checkpoint_id"] == checkpoints[0]
    assert generated_from(client, f"{name}@champion") == checkpoints[0]
    between = datetime.fromisoformat(client.get(f"/models/{name}/history").json()[-1]["at"])

    moved = client.put(f"/models/{name}/aliases/champion", json={"version": 2}).json()
    assert moved["version"] == 2
    assert generated_from(client, f"{name}@champion") == checkpoints[1]

    history = client.get(f"/models/{name}/history").json()
    assert [(e["action"], e["alias"], e["version"]) for e in history] == [
        ("version_created", None, 1),
        ("version_created", None, 2),
        ("alias_set", "champion", 1),
        ("alias_set", "champion", 2),
    ]
    assert history[-1]["old_checkpoint_id"] == checkpoints[0]
    assert history[-1]["new_checkpoint_id"] == checkpoints[1]

    # What did champion mean at the moment of its first move? Version 1, replayed from the history.
    then = client.get(f"/models/{name}/aliases/champion", params={"at": between.isoformat()})
    assert then.status_code == 200, then.text
    assert (then.json()["version"], then.json()["checkpoint_id"]) == (1, checkpoints[0])
    now = client.get(f"/models/{name}/aliases/champion").json()
    assert (now["version"], now["checkpoint_id"]) == (2, checkpoints[1])


def test_deleting_versions_and_aliases(client: TestClient, checkpoints: list[int]) -> None:
    name = fresh_name()
    register(client, name, checkpoints[0])
    register(client, name, checkpoints[1])
    client.put(f"/models/{name}/aliases/staging", json={"version": 2})

    refused = client.delete(f"/models/{name}/versions/2")
    assert refused.status_code == 409 and "staging" in refused.json()["detail"]
    assert client.delete(f"/models/{name}/aliases/staging").status_code == 204
    assert client.get(f"/models/{name}/aliases/staging").status_code == 404
    assert client.delete(f"/models/{name}/versions/2").status_code == 204

    # `latest` falls back to version 1; the number 2 is never given again.
    assert generated_from(client, name) == checkpoints[0]
    gone = client.post("/generate", json={"model": f"{name}:2", "length": 5})
    assert (
        gone.status_code == 404 and "model" in gone.json()["detail"] and "version 2" in gone.json()["detail"]
    )
    assert register(client, name, checkpoints[1])["version"] == 3
    assert [e["action"] for e in client.get(f"/models/{name}/history").json()][-3:] == [
        "alias_deleted",
        "version_deleted",
        "version_created",
    ]


def test_names_survive_a_new_server_process(
    client: TestClient, settings: Settings, checkpoints: list[int]
) -> None:
    name = fresh_name()
    register(client, name, checkpoints[0])
    client.put(f"/models/{name}/aliases/champion", json={"version": 1})
    with TestClient(create_app(settings), headers=AUTH) as restarted:
        assert restarted.get(f"/models/{name}").json()["aliases"] == {"champion": 1, "latest": 1}
        assert generated_from(restarted, f"{name}@champion") == checkpoints[0]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/models/bad name/versions", {"checkpoint_id": 1}, 422, "name"),
        ("post", "/models/-dash/versions", {"checkpoint_id": 1}, 422, "name"),
        ("post", "/models/ok/versions", {"checkpoint_id": 0}, 422, "checkpoint_id"),
        ("post", "/models/ok/versions", {"checkpoint_id": 2_000_000_000}, 404, "checkpoint_id"),
        ("post", "/models/ok/versions", {"checkpoint_id": 1, "bogus": 1}, 422, "bogus"),
        ("put", "/models/NAME/aliases/latest", {"version": 1}, 422, "alias"),
        ("put", "/models/NAME/aliases/9lives", {"version": 1}, 422, "alias"),
        ("put", "/models/NAME/aliases/champion", {"version": 7}, 422, "version"),
        ("put", "/models/NAME/aliases/champion", {"version": 0}, 422, "version"),
        ("put", "/models/nobody/aliases/champion", {"version": 1}, 404, "name"),
        ("get", "/models/nobody", None, 404, "name"),
        ("get", "/models/NAME/versions/7", None, 422, "version"),
        ("get", "/models/NAME/aliases/champion", None, 404, "alias"),
        ("post", "/generate", {"model": "nobody"}, 404, "model"),
        ("post", "/generate", {"model": "NAME@nope"}, 404, "model"),
        ("post", "/generate", {"model": "NAME:7"}, 404, "model"),
        ("post", "/generate", {"model": "NAME@"}, 422, "model"),
        ("post", "/generate", {"model": "NAME:0"}, 422, "model"),
        ("post", "/generate", {"model": "a b"}, 422, "model"),
        ("post", "/generate", {"model": "NAME", "checkpoint_id": 1}, 422, "model"),
        ("post", "/generate", {"model": "NAME", "job_id": 1}, 422, "job_id"),
        ("get", "/generate?model=nobody", None, 404, "model"),
    ],
)
def test_bad_references_are_4xx_naming_the_field(
    client: TestClient,
    checkpoints: list[int],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    field: str,
) -> None:
    name = fresh_name()
    register(client, name, checkpoints[0])
    path = path.replace("NAME", name)
    body = {k: (v.replace("NAME", name) if isinstance(v, str) else v) for k, v in (body or {}).items()}
    kwargs: dict[str, Any] = {"json": body} if method in ("post", "put") else {}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert field in response.json()["detail"], response.text


def test_writes_need_the_token(settings: Settings, checkpoints: list[int]) -> None:
    with TestClient(create_app(settings)) as anonymous:
        name = fresh_name()
        assert (
            anonymous.post(f"/models/{name}/versions", json={"checkpoint_id": checkpoints[0]}).status_code
            == 401
        )
        assert anonymous.put(f"/models/{name}/aliases/champion", json={"version": 1}).status_code == 401
        assert anonymous.get("/models").status_code == 200


def test_v1_models_lists_text_models_and_their_aliases_as_model_cards(
    client: TestClient, checkpoints: list[int]
) -> None:
    name = fresh_name()
    register(client, name, checkpoints[0])
    register(client, name, checkpoints[1])
    client.put(f"/models/{name}/aliases/champion", json={"version": 1})
    listing = client.get("/v1/models")
    assert listing.status_code == 200 and listing.json()["object"] == "list"
    cards = {card["id"]: card for card in listing.json()["data"]}
    plain, aliased = cards[name], cards[f"{name}@champion"]
    assert plain["object"] == "model" and plain["owned_by"] == "rnnlab" and plain["created"] > 0
    assert (plain["root"], plain["checkpoint_id"], plain["version"], plain["parent"]) == (
        f"{name}:2",
        checkpoints[1],
        2,
        None,
    )
    assert (aliased["root"], aliased["checkpoint_id"], aliased["parent"]) == (
        f"{name}:1",
        checkpoints[0],
        name,
    )
    architecture = client.get(f"/checkpoints/{checkpoints[1]}").json()["model_config"]
    assert plain["vocab_size"] == architecture["vocab_size"] > 10
    # Every card's id is something generation accepts as `model`.
    assert generated_from(client, aliased["id"]) == checkpoints[0]
