"""OpenAPI descriptions of the non-JSON answers (images, tables, archives) the routers return."""

from __future__ import annotations

from typing import Any

from fastapi import Response


def media(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: {}}, "description": description}}


PNG = media("image/png", "a PNG image")


def attachment(content: bytes | str, media_type: str, filename: str) -> Response:
    """A file to save: browsers and `curl -OJ` name it `filename` instead of the URL's last part."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type=media_type, headers=headers)
