"""Stop strings for a character stream: where the text ends, and how much of it is safe to show yet.

A stop string ends the text just before its first match (vLLM's and TGI's `stop`); with
`include_stop` the match stays in the text. A match that would leave fewer than `min_length`
characters is passed over (so `min_length` is the shortest text a stop may end), as vLLM's `min_tokens`.

Streaming must never show text past a stop, yet a match may span two chunks: the last `hold`
characters (the longest stop's length - 1) could be the start of a match, so they are held back until
the next character rules it out, and released at the end. Every stop that ends at the newest character
is checked: among them the longest starts first, and so ends the text first.

Pure Python, a few string operations per character: cheaper than a decode step by far.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.decode.limits import MAX_STOP_LENGTH, MAX_STOPS


def check_stops(stops: Sequence[str], min_length: int) -> None:
    """ValueError naming the parameter: at most MAX_STOPS non-empty stop strings, min_length >= 0."""
    if len(stops) > MAX_STOPS:
        raise ValueError(f"stop: at most {MAX_STOPS} stop strings, got {len(stops)}")
    for stop in stops:
        if not isinstance(stop, str) or not 0 < len(stop) <= MAX_STOP_LENGTH:
            raise ValueError(
                f"stop: every stop string must have 1 to {MAX_STOP_LENGTH} characters, got {stop!r}"
            )
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 0:
        raise ValueError(f"min_length must be an integer >= 0, got {min_length!r}")


class StopMatcher:
    """Fed a stream's characters one by one; says what may be shown and whether a stop fired."""

    def __init__(self, stops: Sequence[str], *, min_length: int = 0, include_stop: bool = False) -> None:
        check_stops(stops, min_length)
        # Longest first: of the stops that end at one character, the longest ends the text first.
        self.stops = sorted(set(stops), key=len, reverse=True)
        self.min_length = min_length
        self.include_stop = include_stop
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.length = 0  # characters pushed
        self._held = ""  # the last `hold` characters not yet released
        self.fired: str | None = None

    def push(self, char: str) -> str:
        """Add the next character; the text that is now safe to show (possibly empty). After a stop
        fires (`fired` is set), the text up to the stop (or through it) has been released, and the
        stream is over."""
        self.length += 1
        held = self._held + char
        for stop in self.stops:
            if held.endswith(stop):
                kept = self.length if self.include_stop else self.length - len(stop)
                if kept < self.min_length:
                    continue
                self.fired = stop
                self._held = ""
                # `held` ends at the newest character: the text ends `length - kept` characters before it.
                return held[: len(held) - (self.length - kept)]
        release = len(held) - self.hold
        self._held = held[release:] if release > 0 else held
        return held[:release] if release > 0 else ""

    def flush(self) -> str:
        """The end without a stop: everything still held back."""
        held, self._held = self._held, ""
        return held
