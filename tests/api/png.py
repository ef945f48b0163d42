"""What every figure endpoint must answer: a real PNG of the size app.services.plots draws."""

from __future__ import annotations

import struct

from app.services.plots import DPI, FIGSIZE

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    assert data[:8] == SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_png(data: bytes) -> None:
    assert png_size(data) == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
    assert data.endswith(b"IEND\xaeB`\x82")  # complete, not cut short
    assert len(data) > 10_000  # drawn lines and text, not an empty canvas
