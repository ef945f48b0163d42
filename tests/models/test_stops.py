"""Stop strings: the text ends before the first match, and what is shown never runs past a stop."""

from __future__ import annotations

import random

import pytest

from models.decode.stops import StopMatcher


def run(text: str, stops: list[str], **kwargs: object) -> tuple[list[str], str | None, int]:
    """The chunks released character by character, the stop that fired, the characters consumed."""
    matcher = StopMatcher(stops, **kwargs)  # type: ignore[arg-type]
    chunks = []
    for char in text:
        chunks.append(matcher.push(char))
        if matcher.fired is not None:
            return chunks, matcher.fired, matcher.length
    chunks.append(matcher.flush())
    return chunks, None, matcher.length


def reference(
    text: str, stops: list[str], min_length: int = 0, include: bool = False
) -> tuple[str, str | None]:
    """The definition, by brute force: the earliest-ending match that leaves at least min_length characters;
    among matches ending at the same character, the longest."""
    for end in range(1, len(text) + 1):
        for stop in sorted(stops, key=len, reverse=True):
            if text[:end].endswith(stop):
                kept = end if include else end - len(stop)
                if kept >= min_length:
                    return text[:kept], stop
    return text, None


@pytest.mark.parametrize(
    ("text", "stops", "kwargs", "expected", "fired"),
    [
        ("Sleeping beauty is asleep. The end.", ["."], {}, "Sleeping beauty is asleep", "."),
        (
            "Sleeping beauty is asleep. The end.",
            ["."],
            {"include_stop": True},
            "Sleeping beauty is asleep.",
            ".",
        ),
        (
            "Sleeping beauty is asleep. The end.",
            ["."],
            {"min_length": 30},
            "Sleeping beauty is asleep. The end",
            ".",
        ),
        ("abcabc", ["bc", "c"], {}, "a", "bc"),
        ("no stop here", ["zz"], {}, "no stop here", None),
        ("xxab", ["aab", "ab"], {}, "xx", "ab"),
    ],
)
def test_where_the_text_ends(
    text: str, stops: list[str], kwargs: dict[str, object], expected: str, fired: str | None
) -> None:
    chunks, stop, _ = run(text, stops, **kwargs)
    assert "".join(chunks) == expected and stop == fired


def test_random_texts_match_the_definition_and_chunks_never_run_past_a_stop() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice("ab.c") for _ in range(rng.randint(0, 30)))
        stops = [
            "".join(rng.choice("ab.c") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 4))
        ]
        min_length, include = rng.randint(0, 6), rng.random() < 0.5
        chunks, fired, _ = run(text, stops, min_length=min_length, include_stop=include)
        expected, expected_stop = reference(text, stops, min_length, include)
        assert ("".join(chunks), fired) == (expected, expected_stop), (text, stops, min_length, include)
        # What was shown at any moment is a prefix of the final text: nothing past a stop ever left.
        shown = ""
        for chunk in chunks:
            shown += chunk
            assert expected.startswith(shown)


def test_a_match_that_spans_two_chunks_is_held_back_then_caught() -> None:
    matcher = StopMatcher(["END"])
    # The last two characters could be the start of "END": each is shown once a later one rules that out.
    assert [matcher.push(c) for c in "abE"] == ["", "", "a"]
    assert matcher.push("N") == "b" and matcher.fired is None
    assert matcher.push("D") == "" and matcher.fired == "END"
    assert matcher.hold == 2


def test_no_stops_release_every_character_at_once() -> None:
    matcher = StopMatcher([])
    assert [matcher.push(c) for c in "abc"] == ["a", "b", "c"] and matcher.flush() == ""


@pytest.mark.parametrize(
    ("stops", "min_length", "match"),
    [
        (["a"] * 5, 0, "at most 4"),
        ([""], 0, "1 to 100"),
        (["x" * 101], 0, "1 to 100"),
        (["a"], -1, "min_length"),
    ],
)
def test_bad_stops_are_refused_naming_them(stops: list[str], min_length: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StopMatcher(stops, min_length=min_length)
