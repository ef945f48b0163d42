"""The text a benchmark trains on: `--corpus PATH`, else Grimms' Fairy Tales from ../shared/corpora
when it sits beside the repository (the corpus the README's figures were measured on), else the
built-in CPython documentation, so every script also runs from a bare clone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.corpus import load_corpus

SHARED_GRIMMS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "grimms_fairy_tales_en.txt"


def add_corpus_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        type=Path,
        help=f"UTF-8 text file (Gutenberg boilerplate is stripped); default: {SHARED_GRIMMS} when present, "
        "else the built-in CPython documentation",
    )


def load_bench_corpus(path: Path | None) -> str:
    """The corpus text; prints which corpus it is, since the figures depend on it."""
    if path is None and SHARED_GRIMMS.is_file():
        path = SHARED_GRIMMS
    if path is None:
        # The service's built-in dataset (app/services/builtin.py), read here directly: bench does
        # not import app.
        from pydoc_data.topics import topics

        name, text = "built-in python-docs (pydoc_data.topics)", "\n\n".join(topics.values())
    else:
        name, text = str(path), load_corpus(path, strip_gutenberg=True)
    print(f"corpus: {name}, {len(text):,} characters")
    return text
