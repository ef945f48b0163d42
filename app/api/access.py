"""Who may call what: a bearer token on every write (and on reads if asked), a rate limit on writes and
generation.

One rule for the whole app, applied by an ASGI middleware before routing: a route added later is
covered without opting in, and an unauthenticated upload is refused before its body is read. The
OpenAPI document declares security and the 401/429 answers from the same functions (app/api/openapi.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response
from app.api.rate_limit import RateLimiter, retry_after_header

# Methods that change nothing; every other one (POST, PUT, PATCH, DELETE) needs a token.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Open even with RNNLAB_PROTECT_READS=true: probes, the scraper, the docs a user needs to log in, and the
# dashboard's pages, which are shells holding no data: their scripts fetch it with the user's token.
OPEN_PATHS = frozenset(
    {"/", "/health", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
# The offline docs' JS and CSS (fastapi-offline's default), and the dashboard's pages and assets.
OPEN_PREFIXES = ("/static-offline-docs/", "/ui/")
GENERATION_PATHS = frozenset({"/generate", "/generate/stream"})
REALM = 'Bearer realm="rnnlab"'


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


def needs_token(method: str, path: str, *, protect_reads: bool) -> bool:
    if is_write(method):
        return True
    return protect_reads and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)


def is_rate_limited(method: str, path: str) -> bool:
    """Writes queue work or store data, generation costs CPU: those are limited, plain reads are not."""
    return is_write(method) or path in GENERATION_PATHS


def matching_token(presented: bytes, accepted: Sequence[str]) -> int | None:
    """Index of the accepted token equal to `presented`, or None.

    Constant time: every accepted token is compared (no early exit), and over SHA-256 digests, so the
    comparison takes as long whatever the lengths.
    """
    digest = hashlib.sha256(presented).digest()
    matches = [hmac.compare_digest(digest, hashlib.sha256(t.encode()).digest()) for t in accepted]
    return matches.index(True) if any(matches) else None


def _authorization(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


class AccessControl:
    """Pure ASGI middleware: 401 without a valid token where one is needed, 429 over the rate limit."""

    def __init__(self, app: ASGIApp, *, tokens: Sequence[str], protect_reads: bool, limiter: RateLimiter):
        self.app = app
        self.tokens = tuple(tokens)
        self.protect_reads = protect_reads
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        header = _authorization(scope)
        scheme, _, credentials = (header or b"").partition(b" ")
        token_index = None
        if scheme.lower() == b"bearer" and credentials.strip():
            token_index = matching_token(credentials.strip(), self.tokens)
        if token_index is None and needs_token(method, path, protect_reads=self.protect_reads):
            await self._unauthorized(header, scheme, path)(scope, receive, send)
            return
        if is_rate_limited(method, path):
            # Keyed by which token (never the token itself); anonymous callers by their address.
            client = f"token-{token_index}" if token_index is not None else f"address-{_address(scope)}"
            wait = self.limiter.acquire(client)
            if wait is not None:
                retry = retry_after_header(wait)
                detail = (
                    f"rate limit of {self.limiter.rate * 60:g} requests per minute "
                    f"(burst {self.limiter.burst}) reached; retry in {retry} s"
                )
                response = error_response(429, detail, headers={"Retry-After": retry}, path=path)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _unauthorized(self, header: bytes | None, scheme: bytes, path: str) -> ASGIApp:
        challenge = REALM
        if not self.tokens:
            detail = "no API token is configured on this server (RNNLAB_API_TOKENS); it accepts no writes"
        elif header is None:
            detail = "this operation needs a bearer token: send the header `Authorization: Bearer <token>`"
        elif scheme.lower() != b"bearer":
            detail = "the Authorization header must have the form `Bearer <token>`"
            challenge += ', error="invalid_request"'
        else:
            detail = "the bearer token is not valid"
            challenge += ', error="invalid_token"'
        return error_response(401, detail, headers={"WWW-Authenticate": challenge}, path=path)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
