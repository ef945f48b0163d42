"""Domain exceptions that services raise; `str(exc)` is what a user reads.

They know nothing of HTTP: app/api/errors.py maps them to status codes, in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DomainError(Exception):
    """Base class: `str(exc)` is the user-facing detail."""

    def errors(self) -> list[dict[str, Any]] | None:
        """Per-field errors for the body's `errors` list (422s), or None."""
        return None

    def headers(self) -> dict[str, str]:
        return {}


class NotFound(DomainError):
    pass


class JobNotFound(NotFound):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")


class CheckpointNotFound(NotFound):
    def __init__(self, checkpoint_id: int, field: str = "checkpoint_id") -> None:
        super().__init__(f"{field}: checkpoint {checkpoint_id} not found")


class DatasetNotFound(NotFound):
    def __init__(self, dataset_id: int) -> None:
        super().__init__(f"dataset_id: dataset {dataset_id} not found")


class ExperimentNotFound(NotFound):
    def __init__(self, experiment_id: int) -> None:
        super().__init__(f"experiment {experiment_id} not found")


class SessionNotFound(NotFound):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id} not found (it may have expired)")


class ModelNotFound(NotFound):
    def __init__(self, name: str, field: str = "model") -> None:
        self.name = name
        super().__init__(f"{field}: the model `{name}` does not exist")


class ModelVersionNotFound(NotFound):
    def __init__(self, name: str, version: int, field: str = "model") -> None:
        super().__init__(f"{field}: the model `{name}` has no version {version}")


class ModelHasNoVersions(NotFound):
    def __init__(self, name: str, field: str = "model") -> None:
        super().__init__(f"{field}: the model `{name}` has no versions")


class ModelAliasNotFound(NotFound):
    def __init__(self, name: str, alias: str, field: str = "model") -> None:
        super().__init__(f"{field}: the model `{name}` has no alias `{alias}`")


class Conflict(DomainError):
    pass


class ExperimentNotCancellable(Conflict):
    def __init__(self, experiment_id: int) -> None:
        super().__init__(f"experiment {experiment_id} has no queued or running job left to cancel")


class JobNotCancellable(Conflict):
    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"job {job_id} is already {status}; only queued or running jobs can be cancelled")


class CheckpointIncompatible(Conflict):
    pass


class JobHasNoCheckpoint(Conflict):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job_id: job {job_id} has no checkpoint yet; wait for its first checkpoint")


class WrongTask(Conflict):
    pass


class SessionChanged(Conflict):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} was changed by another request meanwhile; read it again and retry"
        )


class VersionAliased(Conflict):
    def __init__(self, name: str, version: int, aliases: list[str]) -> None:
        names = ", ".join(f"`{a}`" for a in aliases)
        super().__init__(
            f"version {version} of `{name}` is what {names} point at: move or delete those aliases first"
        )


class DatasetTooLarge(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file: upload is larger than the limit of {limit} bytes")


class InvalidInput(DomainError):
    """A value that passed the schema but not a domain check (e.g. seed characters, corpus encoding)."""

    def __init__(self, loc: Sequence[str | int], message: str, *, field: str | None = None) -> None:
        """`field` names the value in the detail when the last `loc` part alone would not
        (e.g. "sweep.input_length[2]" for loc body, sweep, input_length, 2)."""
        self.loc = tuple(loc)
        super().__init__(f"{field or loc[-1]}: {message}")

    def errors(self) -> list[dict[str, Any]] | None:
        return [{"loc": list(self.loc), "msg": str(self), "type": "value_error"}]


class JobTooLarge(DomainError):
    """A training config whose estimated peak memory is over the worker's budget."""

    def __init__(self, fields: Sequence[str], message: str) -> None:
        self.fields = tuple(fields)
        super().__init__(f"{', '.join(fields)}: {message}")

    def errors(self) -> list[dict[str, Any]] | None:
        return [{"loc": ["body", f], "msg": str(self), "type": "value_error"} for f in self.fields]


class TooManyRequests(DomainError):
    """429: come back in `retry_after_s` seconds (sent as the Retry-After header)."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class QueueFull(TooManyRequests):
    def __init__(self, limit: int, *, retry_after_s: int) -> None:
        super().__init__(
            f"{limit} jobs are already queued (RNNLAB_MAX_QUEUED_JOBS); try again once some have started",
            retry_after_s=retry_after_s,
        )


class ServiceUnavailable(DomainError):
    pass


class DatabaseUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("database unavailable; try again shortly")


class GenerationBusy(TooManyRequests):
    def __init__(self, checkpoint_id: int, retry_after_s: int) -> None:
        super().__init__(
            f"checkpoint {checkpoint_id} is generating for as many requests as it accepts; retry later",
            retry_after_s=retry_after_s,
        )


class TooManySessions(TooManyRequests):
    def __init__(self, limit: int, *, retry_after_s: int) -> None:
        super().__init__(
            f"this token holds {limit} sessions already (RNNLAB_MAX_SESSIONS_PER_TOKEN); "
            "delete one or let one expire",
            retry_after_s=retry_after_s,
        )
