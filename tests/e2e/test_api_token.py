"""A server started without RNNLAB_API_TOKENS makes its own token, keeps it private, reuses it."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from app.api.token import ensure_token_file
from app.core.settings import Settings
from tests.conftest import PYTHON, TINY_PALINDROME, free_port, settings_env, start_server, stop_process


def test_token_file_is_private_and_reused(tmp_path: Path) -> None:
    path, created = ensure_token_file(tmp_path / "data")
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 40  # token_urlsafe(32): 43 characters
    assert ensure_token_file(tmp_path / "data") == (path, False)
    assert path.read_text().strip() == token
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["api-token"]  # no staging file left


@pytest.mark.slow
def test_rnnlab_api_without_tokens_uses_the_generated_one(sqlite_settings: Settings, tmp_path: Path) -> None:
    env = settings_env(sqlite_settings) | {"RNNLAB_DATA_DIR": str(tmp_path / "data")}
    del env["RNNLAB_API_TOKENS"]
    log_path = tmp_path / "api.log"
    tokens = []
    for _ in range(2):  # the second start reuses the first one's token
        port = free_port()
        proc = start_server([PYTHON, "-m", "app.cli", "api", "--port", str(port)], env, log_path, port)
        try:
            token = (tmp_path / "data" / "api-token").read_text().strip()
            tokens.append(token)
            url = f"http://127.0.0.1:{port}"
            assert httpx.post(f"{url}/train", json=TINY_PALINDROME).status_code == 401
            wrong = {"Authorization": "Bearer wrong-token-not-for-logs"}
            assert httpx.post(f"{url}/train", json=TINY_PALINDROME, headers=wrong).status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.post(f"{url}/jobs/999999/cancel", headers=auth).status_code == 404
        finally:
            stop_process(proc)
    assert tokens[0] == tokens[1]
    assert stat.S_IMODE((tmp_path / "data" / "api-token").stat().st_mode) == 0o600
    log = log_path.read_text()
    assert "api-token" in log and "Authorization: Bearer $(cat" in log  # says where and how
    assert "POST /train" in log  # the access log is on, and yet:
    assert tokens[0] not in log and "wrong-token-not-for-logs" not in log
