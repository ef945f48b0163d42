"""A wrong RNNLAB_DATABASE_URL or RNNLAB_BROKER_URL: the processes the compose file runs exit 1 with
one line naming the variable and the host, not a traceback (app/runtime/preflight.py).

Real processes, real connection attempts: a port on 127.0.0.1 that nothing listens on (refused), and
a host name that does not resolve (`.invalid` never does, RFC 2606).
"""

from __future__ import annotations

import subprocess

import pytest

from app.core.settings import Settings
from tests.conftest import PYTHON, REPO, free_port, settings_env

pytestmark = pytest.mark.slow  # several processes, each importing the service


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Tried for a second, then given up: a deployment keeps the default 10 s for a slow database.
    env = env | {"RNNLAB_STARTUP_WAIT_SECONDS": "1"}
    return subprocess.run(
        [PYTHON, "-m", "app.cli", command], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["api", "worker", "serve", "migrate"])
def test_an_unreachable_database_is_one_line_naming_it(command: str, pg_settings: Settings) -> None:
    port = free_port()  # nothing listens there
    env = settings_env(pg_settings) | {
        "RNNLAB_DATABASE_URL": f"postgresql+psycopg://rnnlab:secret-password@127.0.0.1:{port}/rnnlab"
    }
    result = _run(command, env)
    assert result.returncode == 1, result.stderr
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert line.startswith(
        f"rnnlab {command}: cannot reach the database at 127.0.0.1:{port} (RNNLAB_DATABASE_URL): "
    ), line
    assert "refused" in line and "secret-password" not in line


@pytest.mark.parametrize("command", ["api", "worker"])
def test_an_unreachable_broker_is_one_line_naming_it(command: str, pg_settings: Settings) -> None:
    env = settings_env(pg_settings) | {"RNNLAB_BROKER_URL": "redis://:secret-password@redis.invalid:6379/0"}
    result = _run(command, env)
    assert result.returncode == 1, result.stderr
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert line.startswith(
        f"rnnlab {command}: cannot reach the broker at redis.invalid:6379 (RNNLAB_BROKER_URL): "
    ), line
    assert "secret-password" not in line and "Traceback" not in line
