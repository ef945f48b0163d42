"""A text corpus from bytes: strict UTF-8 (an error names where it is not), one line-end convention, and
optionally without Project Gutenberg's header and licence."""

from __future__ import annotations

import re
from pathlib import Path


class CorpusError(ValueError):
    """A corpus that cannot be used: not UTF-8 (the message says where), or too short."""


_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF.*$", re.MULTILINE)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF.*$", re.MULTILINE)
# The "End of Project Gutenberg's <title>" line that sits just above the END marker.
_GUTENBERG_END_OF = re.compile(r"\n[^\n]*End of (the )?Project Gutenberg[^\n]*\s*$", re.IGNORECASE)


def decode_corpus(raw: bytes, *, strip_gutenberg: bool = False) -> str:
    """UTF-8 bytes -> text, without a byte-order mark, with "\\n" line ends.

    Anything that is not UTF-8 raises `CorpusError` naming the byte offset, the line and the bytes:
    guessing another encoding would silently put mojibake into the vocabulary. With
    `strip_gutenberg`, only the text between the Project Gutenberg `*** START OF` and `*** END OF`
    marker lines is kept, so the header and licence do not leak into samples.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        bad = raw[e.start : e.end]
        context = raw[max(0, e.start - 20) : e.end + 20].decode("utf-8", errors="replace")
        raise CorpusError(
            f"corpus is not valid UTF-8: byte offset {e.start} (line {line}, column {column}): "
            f"bytes {bad.hex(' ')} ({e.reason}) near {context!r}; re-encode the file as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8` if it is Latin-1"
        ) from None
    # Windows line ends would put "\r" into the vocabulary and into every generated line.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if strip_gutenberg:
        text = strip_gutenberg_boilerplate(text)
    return text


def strip_gutenberg_boilerplate(text: str) -> str:
    """The text between the `*** START OF` and `*** END OF` marker lines (each optional)."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = _GUTENBERG_END_OF.sub("", text[: end.start()])
    text = text.strip("\n")
    return text + "\n" if text else ""


def load_corpus(path: str | Path, *, strip_gutenberg: bool = False) -> str:
    """Read a UTF-8 corpus file; see `decode_corpus`."""
    return decode_corpus(Path(path).read_bytes(), strip_gutenberg=strip_gutenberg)
