"""Bounds of an X-ray, torch-free: models/xray checks them and the API's schemas declare them."""

# A trace's response holds up to seven series (i, f, g, o, c, h, k) per traced unit and position,
# so its size is bounded by positions x traced units (summed over the chosen layers): 2,000
# positions of a 2 x 128-unit char-LSTM, or 10,000 positions of 51 units. ~3.6 M numbers at most.
MAX_TRACE_VALUES = 512_000
MAX_POSITIONS = 10_000  # the longest text /score reads
MAX_TOP = 10  # alternatives per position, units in a ranking
MAX_REGEX_LENGTH = 100
REGEX_SECONDS = 1.0  # a regex feature's matching time on the text, at most (422 beyond)
EXCERPT_CHARS = 80  # characters in a ranked unit's example excerpt
# Karpathy, Johnson & Fei-Fei 2015, fig. 3: a gate is left-saturated below 0.1, right-saturated above 0.9.
LEFT_SATURATED = 0.1
RIGHT_SATURATED = 0.9
# Decimal places of the traced values in a response: a third of the JSON of float32's 17-digit
# reprs, which a 2,000-position, 256-unit answer (~3 M numbers) needs (60 MB against 22 MB).
SIGNAL_DECIMALS = 4
