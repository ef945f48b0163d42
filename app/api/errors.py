"""The one place that maps domain errors (app/core/errors.py), validation errors and an unreachable
database to HTTP responses, all with the same body (`ErrorBody` in the OpenAPI document).

Under `/v1`, the OpenAI-compatible API, the same errors take OpenAI's body,
`{"error": {"message", "type", "param", "code"}}`, and the statuses vLLM's server answers: a request
it cannot serve is a 400 (never 409 or 422: the openai client retries 409 on its own), an unknown
model a 404 "The model `x` does not exist.", then 401, 429 and 503 as elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.db_retry import DATABASE_UNAVAILABLE
from app.core.errors import (
    Conflict,
    DatabaseUnavailable,
    DatasetTooLarge,
    DomainError,
    InvalidInput,
    JobTooLarge,
    ModelNotFound,
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


OPENAI_PREFIX = "/v1/"
OPENAI_STATUS = {409: 400, 413: 400, 422: 400}
OPENAI_TYPES = {401: "authentication_error", 429: "rate_limit_error", 503: "server_error"}
OPENAI_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded", 503: "service_unavailable"}
_FIELD_PREFIX = re.compile(r"^(\w+): ")


def is_openai(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def error_response(
    status_code: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "",
    param: str | None = None,
) -> JSONResponse:
    """Every error the service answers has this body (`ErrorBody` in the OpenAPI document); under
    `/v1`, OpenAI's (`OpenAIErrorBody`), naming the field in `param`."""
    if is_openai(path):
        return openai_error_response(status_code, detail, param=param, headers=headers)
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status_code, headers=headers)


def openai_error_response(
    status_code: int, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    status_code = OPENAI_STATUS.get(status_code, status_code)
    if param is None and (match := _FIELD_PREFIX.match(message)):
        param = match.group(1)
    error = {
        "message": message,
        "type": OPENAI_TYPES.get(status_code, "invalid_request_error"),
        "param": param,
        "code": OPENAI_CODES.get(status_code),
    }
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, message = _status_for(exc), str(exc)
    if isinstance(exc, ModelNotFound) and is_openai(request.url.path):
        message = f"The model `{exc.name}` does not exist."  # vLLM's words, which clients match on
        return openai_error_response(status, message, param="model")
    param = str(exc.loc[-1]) if isinstance(exc, InvalidInput) else None
    return error_response(
        status, message, errors=exc.errors(), headers=exc.headers(), path=request.url.path, param=param
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The driver's "cannot reach the server" errors (app/core/db_retry.py) are a 503, not a bug's 500.
    return await _domain_error(request, DatabaseUnavailable())


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _flatten(exc.errors())
    detail = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    if is_openai(request.url.path):
        # OpenAI names the top-level field alone: `n`, not `body.n`.
        first = errors[0]["loc"] if errors else []
        param = (
            str(first[1]) if len(first) > 1 and first[0] == "body" else (str(first[-1]) if first else None)
        )
        message = "; ".join(f"{_field(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors)
        return openai_error_response(422, message, param=param)
    return error_response(422, detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own errors (an unknown route, a wrong method, a body that is not JSON): OpenAI's body
    under `/v1`, FastAPI's elsewhere."""
    assert isinstance(exc, StarletteHTTPException)
    if is_openai(request.url.path):
        return openai_error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    return await http_exception_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for driver_error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(driver_error, _database_error)
