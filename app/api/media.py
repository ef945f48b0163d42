"""OpenAPI descriptions of the non-JSON answers (images, tables, archives) the routers return."""

from __future__ import annotations

from typing import Any


def media(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: {}}, "description": description}}


PNG = media("image/png", "a PNG image")
