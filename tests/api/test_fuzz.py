"""Schemathesis against a live `rnnlab api` on PostgreSQL + Redis: no 5xx, every answer as documented.

Every operation of the OpenAPI document (POST /train and the multipart POST /datasets included) gets
valid and invalid inputs, with the token, from a fixed seed. The server has a database of its own
(fuzzed jobs stay queued: they must not fill another test's queue) and a queue no worker consumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.settings import Settings
from app.main import create_app
from tests.conftest import (
    AUTH,
    PYTHON,
    free_port,
    migrated_postgres_database,
    settings_env,
    start_server,
    stop_process,
)

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 50
MIN_CASES = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_database() -> Iterator[str]:
    with migrated_postgres_database("rnnlab_fuzz") as url:
        yield url


@pytest.fixture(scope="module")
def fuzzed_api(
    fuzz_database: str, pg_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = pg_settings.model_copy(
        update={"database_url": fuzz_database, "queue": f"{pg_settings.queue}-fuzz-unconsumed"}
    )
    # Limits high enough that the fuzzer reaches the routes instead of the rate limiter.
    env = settings_env(settings) | {
        "RNNLAB_RATE_LIMIT_PER_MINUTE": "1000000",
        "RNNLAB_RATE_LIMIT_BURST": "100000",
    }
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("fuzz") / "api.log"
    proc = start_server([PYTHON, "-m", "app.cli", "api", "--port", str(port)], env, log_path, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        import redis

        redis.Redis.from_url(settings.broker_url).delete(settings.queue)


def documented_schema() -> Any:
    """The OpenAPI document the live server serves, built from the same code and the same settings.

    (Loaded here, at collection, rather than from the server: schemathesis' lazy fixture loader does
    not work with this pytest, and the document does not depend on the database or the broker.)
    """
    app = create_app(Settings(_env_file=None, database_url="sqlite://", broker_url="memory://"))
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.config.generation.update(
        modes=["positive", "negative"], max_examples=EXAMPLES_PER_OPERATION, deterministic=True
    )
    return loaded


schema = documented_schema()
OPERATIONS = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}


@pytest.fixture(scope="module")
def cases_run() -> Iterator[dict[tuple[str, str], int]]:
    """Cases per documented operation; at least MIN_CASES in all once every operation ran.

    (Schemathesis also tries each path with methods it does not document; those are not counted.)
    """
    counts: dict[tuple[str, str], int] = {}
    yield counts
    if set(counts) == OPERATIONS:
        assert sum(counts.values()) >= MIN_CASES, counts


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(
    case: Any, fuzzed_api: str, cases_run: dict[tuple[str, str], int]
) -> None:
    operation = (case.method.upper(), case.path)
    if operation in OPERATIONS:
        cases_run[operation] = cases_run.get(operation, 0) + 1
    # /ready answers its documented 503 here: no worker consumes the fuzzed API's queue.
    checks = [c for c in CHECKS if c is not not_a_server_error] if operation == ("GET", "/ready") else CHECKS
    case.call_and_validate(base_url=fuzzed_api, headers=AUTH, checks=checks)
