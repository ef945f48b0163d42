"""The API token of a server started without RNNLAB_API_TOKENS: generated once, kept in a file.

`rnnlab serve` and `rnnlab api` both call `with_api_token` before they build the app: with no token
configured they use `<data_dir>/api-token`, creating it at first start, so a local server is never
open for writes and its token survives restarts. The token is never logged, only where it is.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from app.core.settings import Settings

log = logging.getLogger(__name__)
TOKEN_FILE = "api-token"


def ensure_token_file(data_dir: Path) -> tuple[Path, bool]:
    """(path of the token file, created now?). Created with mode 0600 in one step, never half-written."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        return path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = data_dir / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    # O_EXCL with mode 0600: the file never exists with wider permissions, not even for a moment.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            # link, not rename: if another process created the file meanwhile, its token wins.
            os.link(staging, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        staging.unlink(missing_ok=True)
    return path, created


def read_token_file(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path} is empty; delete it and restart to generate a new token")
    return token


def with_api_token(settings: Settings) -> Settings:
    """`settings` if it has tokens; else a copy with the token from `<data_dir>/api-token`."""
    if settings.api_token_list:
        return settings
    path, created = ensure_token_file(settings.data_dir)
    token = read_token_file(path)
    log.info(
        "API token %s %s (RNNLAB_API_TOKENS is not set). Send it with every POST, e.g. "
        'curl -H "Authorization: Bearer $(cat %s)" ...',
        "generated in" if created else "read from",
        path,
        path,
    )
    return settings.model_copy(update={"api_tokens": SecretStr(token)})
