"""The OpenAPI document says what the service really answers.

FastAPI's defaults are replaced in one place: every 422 has the `ErrorBody` the handlers in
app/core/errors.py send (FastAPI's HTTPValidationError says `detail` is a list; ours is a string plus
`errors`); an operation with a body declares FastAPI's 400 for one it cannot parse; operations that
need a token declare the bearer scheme (so Swagger UI's Authorize button works) and 401; rate-limited
ones declare 429 with Retry-After. Both follow the same rule as the middleware in app/api/access.py.
Routes declare their own domain errors with `error_responses(...)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.api.access import is_rate_limited, needs_token
from app.api.errors import is_openai
from app.schemas.errors import ErrorBody
from app.schemas.openai import OpenAIErrorBody

SECURITY_SCHEME = "bearerAuth"
ERROR_DESCRIPTIONS = {
    400: "The request body could not be parsed (e.g. JSON that is not UTF-8, broken multipart)",
    401: "Missing or invalid bearer token",
    404: "A referenced id does not exist",
    409: "Not possible in the resource's current state",
    413: "Upload larger than RNNLAB_MAX_UPLOAD_BYTES",
    422: "Invalid input: `detail` names the fields, `errors` lists each one",
    429: "Too many requests; retry after the Retry-After seconds",
    503: "A backing service (database or broker) is unavailable",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_OPENAI_ERROR_REF = {"$ref": "#/components/schemas/OpenAIErrorBody"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the domain errors it answers, each with the shared `ErrorBody`."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def _error(code: int, *, openai: bool = False) -> dict[str, Any]:
    schema = _OPENAI_ERROR_REF if openai else _ERROR_REF
    return {"description": ERROR_DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


def document(app: FastAPI, *, protect_reads: bool) -> dict[str, Any]:
    schema = FastAPI.openapi(app)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    openai_schema = OpenAIErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(openai_schema.pop("$defs", {}))
    schemas["OpenAIErrorBody"] = openai_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from RNNLAB_API_TOKENS (or <data_dir>/api-token when none is set)",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        # Under /v1 every error has OpenAI's body, and what is a 422 elsewhere is a 400 (app/api/errors.py).
        openai = is_openai(path)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if openai:
                responses.pop("422", None)
            # Every error is the JSON ErrorBody, whatever the route's own media type: FastAPI would
            # document a streaming route's 404 as text/event-stream, and FastAPI's 422 schema is not ours.
            # /ready's 503 is not an error body but its Health report, naming the check that is down.
            errors = [] if path == "/ready" else [c for c in responses if c.isdigit() and int(c) >= 400]
            for code in errors:
                responses[code] = _error(int(code), openai=openai) | {
                    k: v for k, v in responses[code].items() if k not in ("content", "description")
                }
            if "requestBody" in operation:
                responses["400"] = _error(400, openai=openai)
            if needs_token(method, path, protect_reads=protect_reads):
                operation["security"] = [{SECURITY_SCHEME: []}]
                responses["401"] = _error(401, openai=openai)
            if is_rate_limited(method, path):
                responses["429"] = _error(429, openai=openai) | {
                    "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
                }
    return schema


def install_openapi(app: FastAPI, *, protect_reads: bool) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, protect_reads=protect_reads)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
