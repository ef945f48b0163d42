"""Small corpora the tests read, kept in the repository so the suite needs nothing beside it.

Each file is an excerpt of a public-domain Project Gutenberg book; README names its source.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent

# The book's start (Gutenberg header, contents, the first tales) and its end (a closing paragraph,
# the "End of Project Gutenberg's" line, the END marker and the start of the licence).
GRIMMS_EXCERPT = _HERE / "grimms_fairy_tales_excerpt.txt"
# A few LaTeX lines in Latin-1: byte 183 (line 7) is 0xb7, a middle dot that is not valid UTF-8.
LATIN1_EXCERPT = _HERE / "calculus_made_easy_latin1_excerpt.tex"
