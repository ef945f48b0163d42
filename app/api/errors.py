"""The one place that maps domain errors (app/core/errors.py), validation errors and an unreachable
database to HTTP responses, all with the same body (`ErrorBody` in the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core.db_retry import DATABASE_UNAVAILABLE
from app.core.errors import (
    Conflict,
    DatabaseUnavailable,
    DatasetTooLarge,
    DomainError,
    InvalidInput,
    JobTooLarge,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)

STATUS_CODES: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    DatasetTooLarge: 413,
    InvalidInput: 422,
    JobTooLarge: 422,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
}


def _status_for(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 400


def _flatten(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


def _field(loc: Sequence[Any]) -> str:
    # ("body", "palindrome", "model") -> "body.palindrome.model": the union tag stays, it says which schema.
    return ".".join(str(part) for part in loc)


def error_response(
    status_code: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Every error the service answers has this body (`ErrorBody` in the OpenAPI document)."""
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return error_response(_status_for(exc), str(exc), errors=exc.errors(), headers=exc.headers())


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The driver's "cannot reach the server" errors (app/core/db_retry.py) are a 503, not a bug's 500.
    return await _domain_error(request, DatabaseUnavailable())


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _flatten(exc.errors())
    detail = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    return error_response(422, detail, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for driver_error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(driver_error, _database_error)
