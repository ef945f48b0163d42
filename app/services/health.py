"""Reachability checks for /ready."""

from __future__ import annotations

from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


def check_database(sessions: sessionmaker[Session]) -> str:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"down: {type(exc).__name__}: {exc}".splitlines()[0]


def check_broker(celery: Celery) -> str:
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            # The filesystem transport "connects" to anything; its folder must exist to be usable.
            folder = connection.transport_options.get("data_folder_out")
            if folder is not None:
                from pathlib import Path

                if not Path(folder).is_dir():
                    return f"down: broker folder {folder} does not exist"
        return "ok"
    except Exception as exc:
        return f"down: {type(exc).__name__}: {exc}".splitlines()[0]
