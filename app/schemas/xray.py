"""`POST /analyze` and `POST /analyze/units`: the X-ray of a model on one input."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.generation import ModelRef, Timings
from models.xray.limits import (
    LEFT_SATURATED,
    MAX_POSITIONS,
    MAX_REGEX_LENGTH,
    MAX_TOP,
    MAX_TRACE_VALUES,
    RIGHT_SATURATED,
    SIGNAL_DECIMALS,
)

MAX_DIGITS = 1000  # as /predict
MAX_LISTED = 4096  # layers or units named in one request
BUDGET = (
    f"positions x chosen units x chosen layers must be at most {MAX_TRACE_VALUES:,} (2,000 positions of "
    f"256 units, e.g. all of a 2 x 128 char-LSTM); at most {MAX_POSITIONS:,} positions"
)
Signal = Literal["c", "h"]
Encoding = Literal["json", "base64", "npz"]
PACKED = (
    "base64 of little-endian float32 (dtype and shape in `arrays`); in an npz answer, the name of "
    "its .npy member"
)
Feature = Literal["in_quotes", "in_brackets", "line_position", "word_start", "vowel"]


class AnalyzeIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        None, min_length=1, max_length=MAX_POSITIONS, description=f"for a text model; {BUDGET}"
    )
    digits: str | None = Field(
        None,
        pattern=r"^[0-9]+$",
        max_length=MAX_DIGITS,
        description="for a palindrome model: the digits it reads, one position each",
    )
    layers: list[int] | None = Field(
        None, max_length=MAX_LISTED, description="layer indices from 0; default every layer"
    )
    units: list[int] | None = Field(
        None,
        max_length=MAX_LISTED,
        description=f"unit indices from 0, the same in every chosen layer; default every unit. {BUDGET}",
    )
    signals: list[str] | None = Field(
        None,
        max_length=8,
        description='the signals to list (e.g. ["c", "h"]); default every one the model has',
    )
    top: int = Field(3, ge=0, le=MAX_TOP, description="text models: alternatives listed at each position")
    encoding: Encoding = Field(
        "json",
        description="json: lists of numbers (signals to 4 decimals); base64: each per-unit series "
        "and per-position array as base64 of little-endian float32, unrounded, with the dtype and "
        "shapes stated once in `arrays` (a tenth of the time at every unit); npz: the same arrays as "
        "the .npy members of an application/x-npz answer (numpy's .npz, a zip) whose `answer.json` is "
        "the base64 answer with each string the name of its member (the cheapest for every unit)",
    )

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.text is None) == (self.digits is None):
            raise ValueError("give exactly one of text (a text model) or digits (a palindrome model)")
        return self


class Saturation(BaseModel):
    left: list[float] = Field(
        description=f"per chosen unit: the fraction of positions below {LEFT_SATURATED}"
    )
    right: list[float] = Field(description=f"per chosen unit: the fraction above {RIGHT_SATURATED}")


class LayerTrace(BaseModel):
    layer: int
    units: list[int]
    signals: dict[str, list[list[float]]] = Field(
        description="per signal (i, f, g, o, c, h for an LSTM; h for the RNN; also k, the time gate, for "
        "the Phased LSTM), per chosen unit, its value at every position (after reading that position), "
        f"to {SIGNAL_DECIMALS} decimal places"
    )
    saturation: dict[str, Saturation] = Field(
        description="per sigmoid gate (i, f, o): Karpathy, Johnson & Fei-Fei 2015, figure 3"
    )


class TextPositions(BaseModel):
    surprisal_bits: list[float | None] = Field(description="-log2 p(character | the ones before); first null")
    entropy_bits: list[float | None] = Field(description="of the distribution that predicted the character")
    top: list[dict[str, float] | None] = Field(
        description="the likeliest characters there, with probabilities"
    )


class DigitPositions(BaseModel):
    predictions: list[int] = Field(description="the digit the model would answer after each position")
    probabilities: list[list[float]] = Field(description="per position, the 10 digits' probabilities")


class AnalyzeOut(BaseModel):
    checkpoint_id: int
    model_type: str = Field(description="rnn, lstm, phased_lstm or char_lstm")
    tokens: list[str] = Field(description="the characters or digits, one per position")
    text: TextPositions | None = None
    digits: DigitPositions | None = None
    layers: list[LayerTrace]
    encoding: Literal["json"] = "json"
    timings: Timings


# The base64 answer: its own models, not unions in the ones above, so that a JSON answer is
# serialised against exact types (a `list[list[float]] | str` field costs pydantic-core ~1.7x the
# time over 3 M numbers: it checks the list before choosing it).


class PackedArrays(BaseModel):
    """How to read every string of a base64 answer, stated once: they all have one dtype."""

    dtype: Literal["<f4"] = Field(description="numpy's name: little-endian float32, C order, unrounded")
    shapes: dict[str, list[int]] = Field(
        description="signals (every signal of every layer): [units, positions]; surprisal_bits and "
        "entropy_bits: [positions]; probabilities: [positions, 10]"
    )


class PackedLayerTrace(BaseModel):
    layer: int
    units: list[int]
    signals: dict[str, str] = Field(description=f"per signal, {PACKED}: [units, positions]")
    saturation: dict[str, Saturation] = Field(description="as with encoding json")


class PackedTextPositions(BaseModel):
    surprisal_bits: str = Field(description=f"{PACKED}: [positions], NaN at the first (JSON's null)")
    entropy_bits: str = Field(description=f"{PACKED}: [positions], NaN at the first")
    top: list[dict[str, float] | None] = Field(description="as with encoding json")


class PackedDigitPositions(BaseModel):
    predictions: list[int] = Field(description="as with encoding json")
    probabilities: str = Field(description=f"{PACKED}: [positions, 10]")


class PackedAnalyzeOut(BaseModel):
    """`POST /analyze` with `"encoding": "base64"`: the same fields, every array a string (with
    `"npz"`: the `answer.json` member, every string the name of the array's member)."""

    checkpoint_id: int
    model_type: str
    tokens: list[str]
    text: PackedTextPositions | None = None
    digits: PackedDigitPositions | None = None
    layers: list[PackedLayerTrace]
    encoding: Literal["base64", "npz"] = "base64"
    arrays: PackedArrays
    timings: Timings


class UnitsIn(ModelRef):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=2, max_length=MAX_POSITIONS, description="the text to read")
    layer: int = Field(0, ge=0, le=MAX_LISTED, description="the layer whose units are ranked")
    signal: Signal = Field(
        "c", description="c, the cell (Karpathy et al.'s cells are c), or h = o tanh(c), the output"
    )
    feature: Feature | None = Field(
        None,
        description="in_quotes, in_brackets (1 inside, the opening mark included), line_position (index in "
        "the line), word_start (a letter after a non-letter), vowel; each the state after the character",
    )
    regex: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REGEX_LENGTH,
        description="instead of a feature: characters inside a match are 1, the rest 0",
    )
    top: int = Field(5, ge=1, le=MAX_TOP, description="units to return")

    @model_validator(mode="after")
    def _one_feature(self) -> Self:
        if (self.feature is None) == (self.regex is None):
            raise ValueError("give exactly one of feature or regex")
        return self


class RankedUnitOut(BaseModel):
    unit: int
    r: float = Field(description="Pearson's correlation of the signal with the feature (signed)")
    values: list[float] = Field(description="the unit's signal over the excerpt")


class UnitsOut(BaseModel):
    checkpoint_id: int
    layer: int
    signal: Signal
    feature: str = Field(description="the feature's name, or regex:<pattern>")
    positions: int
    excerpt_start: int = Field(description="the excerpt's first position in the text")
    excerpt: str = Field(description="a short stretch of the text where the feature changes")
    feature_values: list[float] = Field(description="the feature over the excerpt")
    units: list[RankedUnitOut] = Field(description="ranked by |r|, largest first")
    timings: Timings
