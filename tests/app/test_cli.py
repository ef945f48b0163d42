"""`rnnlab serve | api` listen where the flags say, else where the settings say (RNNLAB_HOST, RNNLAB_PORT)."""

from __future__ import annotations

import pytest

from app.cli import address, build_parser
from app.core.settings import Settings


def test_the_flags_win_over_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RNNLAB_HOST", "RNNLAB_PORT"):
        monkeypatch.delenv(name, raising=False)
    parser = build_parser()
    assert address(parser.parse_args(["api"]), Settings(_env_file=None)) == ("127.0.0.1", 8000)

    monkeypatch.setenv("RNNLAB_HOST", "0.0.0.0")
    monkeypatch.setenv("RNNLAB_PORT", "9001")
    assert address(parser.parse_args(["serve"]), Settings(_env_file=None)) == ("0.0.0.0", 9001)
    flags = parser.parse_args(["api", "--host", "127.0.0.2", "--port", "0"])  # port 0 is a flag too
    assert address(flags, Settings(_env_file=None)) == ("127.0.0.2", 0)
