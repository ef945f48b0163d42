"""A job's status and the moves between statuses: the one definition the API, the worker, the
metrics and the database's CHECK constraint all use.

    queued  -> running | cancelled
    running -> succeeded | failed | cancelled | queued

A queued job never fails: the jobs table is the outbox, so a broker that refuses the task only delays
it (app/services/supervision.py). `queued` from running: the worker shut down (or died) and the job
waits to be resumed from its latest checkpoint. A job whose worker died RNNLAB_MAX_ATTEMPTS times fails from
running. Finished jobs never move.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    **{status: frozenset() for status in FINISHED},
}


class IllegalTransition(ValueError):
    """A status change the state machine does not allow: a bug in the caller, never user input."""


def sources(to: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may move to `to` from."""
    return frozenset(status for status, targets in TRANSITIONS.items() if to in targets)


def check_transition(from_: JobStatus, to: JobStatus) -> None:
    if to not in TRANSITIONS[from_]:
        raise IllegalTransition(f"a job cannot move from {from_} to {to}")
