"""What every revision test needs: an empty database of each backend, and Alembic pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from app.core.db import MIGRATIONS_DIR
from tests.conftest import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_postgres_database("rnnlab_migration") as url:
        yield url


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url  # migrations/env.py reads it instead of the settings
    return config


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
