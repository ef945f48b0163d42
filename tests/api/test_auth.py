"""Bearer tokens: every write needs one, reads only with RNNLAB_PROTECT_READS, the docs declare it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.access import READ_METHODS, matching_token
from app.core.settings import Settings
from app.main import create_app
from tests.conftest import API_TOKEN, AUTH, TINY_PALINDROME, count_rows


def routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation the app documents, ids filled in with 1.

    (FastAPI nests included routers in private route types; the OpenAPI document lists them all.)
    """
    paths = create_app(settings).openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path)) for path, ops in paths.items() for method in ops
    ]


@pytest.fixture(scope="module")
def anonymous(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def protected(sqlite_settings: Settings) -> Iterator[TestClient]:
    """The app with RNNLAB_PROTECT_READS=true, and no token sent."""
    with TestClient(create_app(sqlite_settings.model_copy(update={"protect_reads": True}))) as client:
        yield client


def writes(settings: Settings) -> list[tuple[str, str]]:
    found = [(m, p) for m, p in routes(settings) if m not in READ_METHODS]
    assert ("POST", "/train") in found and ("POST", "/datasets") in found  # the enumeration works
    return found


def assert_unauthorized(response, why: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    if response.url.path.startswith("/v1/"):  # OpenAI's error body there (app/api/errors.py)
        assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "invalid_api_key"
        assert why in body["error"]["message"]
    else:
        assert why in body["detail"]


def test_every_write_needs_a_valid_token(anonymous: TestClient, sqlite_settings: Settings) -> None:
    before = count_rows(sqlite_settings)
    for method, path in writes(sqlite_settings):
        assert_unauthorized(anonymous.request(method, path, json=TINY_PALINDROME), "needs a bearer token")
        wrong = {"Authorization": "Bearer not-the-token"}
        assert_unauthorized(anonymous.request(method, path, json=TINY_PALINDROME, headers=wrong), "not valid")
        basic = {"Authorization": f"Basic {API_TOKEN}"}
        assert_unauthorized(anonymous.request(method, path, headers=basic), "Bearer <token>")
    assert count_rows(sqlite_settings) == before


def test_unauthenticated_upload_is_refused_before_its_body_is_read(anonymous: TestClient) -> None:
    response = anonymous.post("/datasets", files={"file": ("big.txt", b"a" * 30_000_000, "text/plain")})
    assert response.status_code == 401  # not 413: who is asking comes first


def test_a_valid_token_is_accepted(anonymous: TestClient) -> None:
    response = anonymous.post("/train", json=TINY_PALINDROME, headers=AUTH)
    assert response.status_code == 202, response.text


def test_any_of_several_configured_tokens_is_accepted(sqlite_settings: Settings) -> None:
    settings = sqlite_settings.model_copy(update={"api_tokens": SecretStr("old-token, new-token")})
    with TestClient(create_app(settings)) as client:
        for token in ("old-token", "new-token"):
            response = client.post("/jobs/999999/cancel", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 404  # past authentication
        assert client.post("/jobs/999999/cancel", headers=AUTH).status_code == 401


def test_reads_are_open_by_default(anonymous: TestClient, sqlite_settings: Settings) -> None:
    for method, path in routes(sqlite_settings):
        if method == "GET":
            assert anonymous.get(path).status_code != 401, path


def test_protected_reads_need_the_token_except_probes_and_docs(
    protected: TestClient, sqlite_settings: Settings
) -> None:
    for method, path in routes(sqlite_settings):
        if method == "GET" and path not in ("/health", "/ready", "/metrics"):
            assert_unauthorized(protected.get(path), "needs a bearer token")
            assert protected.get(path, headers=AUTH).status_code != 401, path
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/redoc"):
        # /ready answers, without a token, 503: no worker consumes this app's queue.
        assert protected.get(path).status_code == (503 if path == "/ready" else 200), path
    # The docs' own assets load without a token, or the login page could not render.
    html = protected.get("/docs").text
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert protected.get(asset).status_code == 200, asset
    # So do the dashboard's pages and assets: they hold no data, their scripts fetch it with the token.
    html = protected.get("/").text
    assert protected.get("/").status_code == 200
    for asset in re.findall(r'(?:src|href)="(/ui/[^"]+)"', html):
        assert protected.get(asset).status_code == 200, asset
    assert_unauthorized(protected.get("/jobs"), "needs a bearer token")  # the data they show is not


def test_a_server_without_tokens_accepts_no_write(sqlite_settings: Settings) -> None:
    settings = sqlite_settings.model_copy(update={"api_tokens": SecretStr("")})
    with TestClient(create_app(settings)) as client:
        assert_unauthorized(client.post("/train", json=TINY_PALINDROME, headers=AUTH), "no API token")


def test_openapi_declares_the_bearer_scheme_on_writes(anonymous: TestClient, protected: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured == (method != "get"), (method, path)
            assert ("401" in operation["responses"]) == secured, (method, path)
    # With protected reads, the reads declare it too (but not the probes).
    paths = protected.get("/openapi.json").json()["paths"]
    assert paths["/jobs"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/health"]["get"]


def test_token_comparison_checks_every_token() -> None:
    assert matching_token(b"b", ["a", "b", "c"]) == 1
    assert matching_token(b"", ["a"]) is None
    assert matching_token(b"a" * 1000, ["a"]) is None


def test_tokens_never_reach_the_logs(
    anonymous: TestClient, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-that-must-not-be-logged"
    anonymous.post("/train", json=TINY_PALINDROME, headers={"Authorization": f"Bearer {wrong}"})
    anonymous.post("/train", json={"task": "sudoku"}, headers=AUTH)
    anonymous.post("/jobs/1/cancel", headers=AUTH)
    assert API_TOKEN not in repr(sqlite_settings)
    for record in caplog.records:
        assert API_TOKEN not in record.getMessage() and wrong not in record.getMessage()
