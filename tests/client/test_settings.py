"""Where the client finds its server and token when no `--url` / `--token` is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.settings import DEFAULT_URL, ClientSettings


@pytest.fixture(autouse=True)
def no_client_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RNNLAB_URL", "RNNLAB_TOKEN", "RNNLAB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the working directory


def test_the_environment_wins_over_the_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "api-token").write_text("from-file\n")
    monkeypatch.setenv("RNNLAB_TOKEN", "from-env")
    assert ClientSettings(data_dir=tmp_path).resolved_token() == "from-env"


def test_the_token_file_that_serve_writes(tmp_path: Path) -> None:
    assert ClientSettings(data_dir=tmp_path).resolved_token() is None
    (tmp_path / "api-token").write_text("from-file\n")
    assert ClientSettings(data_dir=tmp_path).resolved_token() == "from-file"


def test_the_data_dir_comes_from_the_environment_as_the_servers_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "api-token").write_text("from-file\n")
    monkeypatch.setenv("RNNLAB_DATA_DIR", str(tmp_path))
    assert ClientSettings().resolved_token() == "from-file"


def test_the_url_from_the_environment_else_a_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClientSettings().resolved_url == DEFAULT_URL
    monkeypatch.setenv("RNNLAB_URL", "")  # set but empty: as if unset
    assert ClientSettings().resolved_url == DEFAULT_URL
    monkeypatch.setenv("RNNLAB_URL", "http://gpu-box:8000")
    assert ClientSettings().resolved_url == "http://gpu-box:8000"
