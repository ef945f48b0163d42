"""Where the client finds its token when no `--token` is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.client.http import default_token


def test_the_environment_wins_over_the_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "api-token").write_text("from-file\n")
    monkeypatch.setenv("RNNLAB_TOKEN", "from-env")
    assert default_token(tmp_path) == "from-env"


def test_the_token_file_that_serve_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNLAB_TOKEN", raising=False)
    assert default_token(tmp_path) is None
    (tmp_path / "api-token").write_text("from-file\n")
    assert default_token(tmp_path) == "from-file"
