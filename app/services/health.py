"""Reachability checks for /ready: the database, the broker and at least one live worker."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.services import workers


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


def check_workers(sessions: sessionmaker[Session], *, queues: Sequence[str], lease_seconds: float) -> str:
    """ok when a worker consuming one of `queues` (the CPU and the GPU workers') wrote its heartbeat
    within the lease: jobs will run (`auto` ones go wherever a worker is; app/services/routing.py)."""
    try:
        with sessions() as session:
            live = workers.live_workers(session, lease_seconds=lease_seconds)
    except Exception as exc:
        return f"unknown: {type(exc).__name__}: {exc}".splitlines()[0]
    if not any(live.get(queue, 0) for queue in queues):
        named = " or ".join(repr(queue) for queue in queues)
        return f"down: no worker on queue {named} sent a heartbeat in the last {lease_seconds:g} s"
    return "ok"
