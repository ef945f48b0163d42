"""The one way a service changes a job's status: a conditional UPDATE checked against the state machine."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Update, update
from sqlalchemy.orm import Session

from app.core.job_status import FINISHED, JobStatus, check_transition
from app.core.tables import Job, utcnow


def move(
    session: Session,
    *where: ColumnElement[bool],
    from_: Iterable[JobStatus],
    to: JobStatus,
    **values: Any,
) -> int:
    """Move the jobs matching `where` that are in one of `from_` NOW to `to`; returns how many moved.

    The status test runs inside the UPDATE, so of two writers racing for a job only one moves it.
    Does not commit: the caller decides what else belongs to the same transaction.
    """
    from_ = tuple(from_)
    for status in from_:
        check_transition(status, to)
    now = utcnow()
    stamps = {"updated_at": now} | ({"finished_at": now} if to in FINISHED else {})
    return rows_updated(
        session, update(Job).where(Job.status.in_(from_), *where).values(status=to, **stamps, **values)
    )


def rows_updated(session: Session, statement: Update) -> int:
    """Run an UPDATE; returns how many rows it changed."""
    # Session.execute is typed to return a plain Result; for an UPDATE it is a CursorResult.
    return cast(CursorResult[Any], session.execute(statement)).rowcount
