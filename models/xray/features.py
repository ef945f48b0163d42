"""Per-character features of a text, the kind a single LSTM unit was found to track (Karpathy,
Johnson & Fei-Fei 2015: quotes, brackets, the position in a line). Pure text processing, torch-free.

Every feature is the state *after reading* the character, as a unit's activation at that position
is: an opening quote is already inside the quotes, a closing one is outside again.
"""

from __future__ import annotations

from collections.abc import Callable

# The `regex` package, not `re`: the same syntax, plus a time limit. A user's pattern such as (a|aa)+$
# backtracks exponentially; `re` would hold a server thread for hours.
import regex

from models.xray.limits import REGEX_SECONDS

# Curly quotes and guillemets, whose opening and closing marks differ. Single curly quotes are
# Gutenberg's dialogue marks (Grimm's tales: 2,311 of them, against 13 double ones), and their
# closing mark is also the apostrophe: between two letters (gardener\u2019s) it closes nothing.
OPENING_QUOTES = {"\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
APOSTROPHE = "\u2019"
STRAIGHT_QUOTE = '"'
BRACKETS = {"(": ")", "[": "]", "{": "}"}
VOWELS = frozenset("aeiouAEIOU")


class InvalidRegex(ValueError):
    """A regex feature that does not compile, or that runs past REGEX_SECONDS on the text."""


def in_quotes(text: str) -> list[float]:
    """1 between an opening quote (itself included) and its closing quote; a straight " toggles."""
    values, inside, closing = [], False, ""
    for n, ch in enumerate(text):
        if inside and ch == closing and not (ch == APOSTROPHE and _between_letters(text, n)):
            inside = False
        elif not inside and ch in OPENING_QUOTES:
            inside, closing = True, OPENING_QUOTES[ch]
        elif not inside and ch == STRAIGHT_QUOTE:
            inside, closing = True, STRAIGHT_QUOTE
        values.append(float(inside))
    return values


def _between_letters(text: str, n: int) -> bool:
    return 0 < n < len(text) - 1 and text[n - 1].isalpha() and text[n + 1].isalpha()


def in_brackets(text: str) -> list[float]:
    """1 while some bracket ( [ { is open (its opening bracket included, its closing one not)."""
    values, depth = [], 0
    closing = set(BRACKETS.values())
    for ch in text:
        if ch in BRACKETS:
            depth += 1
        elif ch in closing and depth:
            depth -= 1
        values.append(float(depth > 0))
    return values


def line_position(text: str) -> list[float]:
    """The index in its line: 0 for the first character after a newline (and for the newline)."""
    values, column = [], 0
    for ch in text:
        if ch == "\n":
            column = 0
            values.append(0.0)
        else:
            values.append(float(column))
            column += 1
    return values


def word_start(text: str) -> list[float]:
    """1 for a letter that follows a non-letter (or starts the text)."""
    return [float(ch.isalpha() and (n == 0 or not text[n - 1].isalpha())) for n, ch in enumerate(text)]


def vowel(text: str) -> list[float]:
    return [float(ch in VOWELS) for ch in text]


FEATURES: dict[str, Callable[[str], list[float]]] = {
    "in_quotes": in_quotes,
    "in_brackets": in_brackets,
    "line_position": line_position,
    "word_start": word_start,
    "vowel": vowel,
}


def regex_feature(text: str, pattern: str) -> list[float]:
    """1 for every character inside a match of `pattern` (finditer; empty matches mark nothing)."""
    try:
        compiled = regex.compile(pattern)
    except regex.error as e:
        raise InvalidRegex(f"not a valid regular expression: {e}") from e
    values = [0.0] * len(text)
    try:
        for match in compiled.finditer(text, timeout=REGEX_SECONDS):
            for n in range(match.start(), match.end()):
                values[n] = 1.0
    except TimeoutError as e:
        raise InvalidRegex(
            f"the regular expression ran past {REGEX_SECONDS:g} s on this text (nested repetition such as "
            "(a|aa)+ backtracks exponentially): simplify it"
        ) from e
    return values
