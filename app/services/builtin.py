"""The built-in dataset: CPython's own documentation, shipped with every Python in `pydoc_data`."""

from __future__ import annotations

BUILTIN_NAME = "python-docs (pydoc_data.topics)"


def builtin_corpus() -> tuple[str, str]:
    """(name, text): the pydoc topic texts joined; ~450k characters, no download needed."""
    from pydoc_data.topics import topics

    return BUILTIN_NAME, "\n\n".join(topics.values())
