"""The X-ray of a model on one input (`POST /analyze`) and its units ranked against a text feature
(`POST /analyze/units`): resolve and load the model as /score does, check the input against it, then
one traced forward pass (models/xray) in a server thread."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import pydantic_core
from starlette.concurrency import run_in_threadpool

from app.core.errors import InvalidInput, WrongTask
from app.generation.cache import LoadedModel, ModelCache
from app.schemas.generation import Timings
from app.schemas.xray import (
    AnalyzeIn,
    AnalyzeOut,
    DigitPositions,
    LayerTrace,
    PackedAnalyzeOut,
    PackedArrays,
    PackedDigitPositions,
    PackedLayerTrace,
    PackedTextPositions,
    RankedUnitOut,
    Saturation,
    TextPositions,
    UnitsIn,
    UnitsOut,
)
from app.services.generation import Sessions, loaded_model
from app.services.xray_arrays import DTYPE, NPZ, float32, npz, packed
from models.xray.limits import MAX_TRACE_VALUES, SIGNAL_DECIMALS

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class Input:
    """A checked input: what the model reads and the tokens the response lists."""

    tensor: torch.Tensor  # (B, T) ids or (B, T, D) digits
    tokens: list[str]
    field: str  # text or digits, for errors


def model_input(loaded: LoadedModel, *, text: str | None, digits: str | None, source: str = "body") -> Input:
    """409 when the model reads the other kind of input; 422 naming characters outside its vocabulary."""
    from models.data import UnknownCharacters, digits_from, encode_digits

    kind = "text" if loaded.task == "text" else "digits"
    if (text if kind == "text" else digits) is None:
        other = "digits" if kind == "text" else "text"
        raise WrongTask(
            f"checkpoint {loaded.checkpoint_id} is a {loaded.task} model: it reads `{kind}`, not `{other}`"
        )
    if text is not None and kind == "text":
        missing = loaded.vocab.missing(text)
        if missing:
            raise InvalidInput((source, "text"), str(UnknownCharacters(missing)))
        return Input(loaded.vocab.encode(text)[None], list(text), "text")
    assert digits is not None
    encoding = loaded.train_config["input_encoding"]
    return Input(encode_digits(digits_from(digits)[None], encoding), list(digits), "digits")


def chosen(
    sizes: list[int],
    layers: list[int] | None,
    units: list[int] | None,
    positions: int,
    field: str,
    source: str = "body",
) -> tuple[list[int], list[int]]:
    """The layers and units to list (every one by default), in range and within the budget."""
    layers = list(dict.fromkeys(layers)) if layers is not None else list(range(len(sizes)))
    for layer in layers:
        if not 0 <= layer < len(sizes):
            raise InvalidInput(
                (source, "layers"),
                f"layer {layer} is out of range: this model has layers 0..{len(sizes) - 1}",
            )
    width = sizes[0]  # every layer of these models has the same width
    units = list(dict.fromkeys(units)) if units is not None else list(range(width))
    for unit in units:
        if not 0 <= unit < width:
            raise InvalidInput(
                (source, "units"),
                f"unit {unit} is out of range: this model's layers have units 0..{width - 1}",
            )
    if not layers or not units:
        raise InvalidInput((source, "units" if layers else "layers"), "choose at least one")
    total = positions * len(units) * len(layers)
    if total > MAX_TRACE_VALUES:
        raise InvalidInput(
            (source, field),
            f"{positions} positions x {len(units)} units x {len(layers)} layers = {total:,} is over the "
            f"budget of {MAX_TRACE_VALUES:,}: choose fewer units or layers, or a shorter input",
        )
    return layers, units


@dataclass(frozen=True)
class Encoded:
    """An answer ready to send: its bytes and their media type."""

    content: bytes
    media_type: str


async def analyze(sessions: Sessions, cache: ModelCache, body: AnalyzeIn) -> Encoded:
    from models.xray.trace import layer_sizes

    started = perf_counter()
    loaded = await loaded_model(
        sessions, cache, checkpoint_id=body.checkpoint_id, job_id=body.job_id, model=body.model
    )
    given = model_input(loaded, text=body.text, digits=body.digits)
    layers, units = chosen(layer_sizes(loaded.model), body.layers, body.units, len(given.tokens), given.field)
    loaded_at = perf_counter()
    parts, arrays = await run_in_threadpool(
        _analyze, loaded, given, layers, units, body.top, body.signals, body.encoding
    )
    done = perf_counter()
    timings = Timings.between(started, loaded_at, done)
    # Made here from checked parts: model_construct, no validation of up to 3 M numbers.
    fields: dict[str, Any] = {"checkpoint_id": loaded.checkpoint_id, "tokens": given.tokens} | parts
    fields |= {"encoding": body.encoding, "timings": timings}
    answer = AnalyzeOut if body.encoding == "json" else PackedAnalyzeOut
    encoded = answer.model_construct(**fields)
    # Serialised by pydantic-core to bytes, in a server thread: at the budget's limit that is tens of
    # MB, not to be made on the event loop (nor re-validated and dumped by json.dumps, as a returned
    # model would be: seconds instead of a fraction).
    content = await run_in_threadpool(pydantic_core.to_json, encoded)
    if body.encoding == "npz":
        return Encoded(await run_in_threadpool(npz, content, arrays), NPZ)
    return Encoded(content, "application/json")


def _analyze(
    loaded: LoadedModel,
    given: Input,
    layers: list[int],
    units: list[int],
    top: int,
    signals: list[str] | None,
    encoding: str,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The answer's parts, and for a packed encoding its float32 arrays by member name (each field a
    base64 string of its array, or with npz the name)."""
    from models.xray.predictions import digit_predictions, information_bits, text_predictions, top_characters
    from models.xray.saturation import saturation
    from models.xray.trace import SIGNALS, layer_sizes, model_type, trace

    kind = model_type(loaded.model)
    if signals is not None:
        unknown = sorted(set(signals) - set(SIGNALS[kind]))
        if unknown:
            raise InvalidInput(
                ("body", "signals"),
                f"a {kind} model has no {', '.join(unknown)}; it has {', '.join(SIGNALS[kind])}",
            )
    every_unit = units == list(range(layer_sizes(loaded.model)[0]))
    # Gates only for the listed layers: the dashboard's one unit of the last layer skips the first's.
    traced = trace(loaded.model, given.tensor, units=None if every_unit else units, layers=layers)
    arrays: dict[str, np.ndarray] = {}
    pack = encoding != "json"

    def array(name: str, values: torch.Tensor) -> str:
        arrays[name] = float32(values)
        return name if encoding == "npz" else packed(arrays[name])

    parts: dict[str, Any] = {"model_type": kind}
    positions = len(given.tokens)
    shapes = {"signals": [len(units), positions]}
    if given.field == "text":
        logits, ids = traced.logits[0], given.tensor[0]
        if pack:
            surprisal, entropy = information_bits(logits, ids)
            shapes |= {"surprisal_bits": [positions], "entropy_bits": [positions]}
            parts["text"] = PackedTextPositions(
                surprisal_bits=array("surprisal_bits", surprisal),
                entropy_bits=array("entropy_bits", entropy),
                top=top_characters(logits, loaded.vocab, top),
            )
        else:
            predicted = text_predictions(logits, ids, loaded.vocab, top)
            bits = {"surprisal_bits": predicted.surprisal_bits, "entropy_bits": predicted.entropy_bits}
            parts["text"] = TextPositions(**bits, top=predicted.top)
    else:
        predictions, probabilities = digit_predictions(traced.logits[0])
        if pack:
            shapes["probabilities"] = [positions, 10]
            parts["digits"] = PackedDigitPositions(
                predictions=predictions.tolist(), probabilities=array("probabilities", probabilities)
            )
        else:
            parts["digits"] = DigitPositions(
                predictions=predictions.tolist(), probabilities=probabilities.tolist()
            )
    if pack:
        parts["arrays"] = PackedArrays(dtype=DTYPE, shapes=shapes)
    listed = []
    for layer in layers:
        picked = {name: values[0] for name, values in traced.layers[layer].items()}  # each (T, units)
        fractions = saturation({name: values[None] for name, values in picked.items()})
        shown = [name for name in picked if signals is None or name in signals]
        # model_construct: ~3 M numbers at the budget's limit, made here from tensors, need no
        # validation (which would cost as much as the trace). One series per unit: (units, T).
        trace_of = PackedLayerTrace if pack else LayerTrace
        series: dict[str, Any] = {
            name: array(f"layer{layer}/{name}", picked[name].t()) if pack else rounded(picked[name].t())
            for name in shown
        }
        listed.append(
            trace_of.model_construct(
                layer=layer,
                units=units,
                signals=series,
                saturation={
                    gate: Saturation(left=left.tolist(), right=right.tolist())
                    for gate, (left, right) in fractions.items()
                },
            )
        )
    parts["layers"] = listed
    return parts, arrays


def rounded(values: torch.Tensor) -> list[Any]:
    """Lists of numbers to SIGNAL_DECIMALS places: in float64 first, so 0.1234 prints as 0.1234."""
    return values.double().round(decimals=SIGNAL_DECIMALS).tolist()


async def rank_units(sessions: Sessions, cache: ModelCache, body: UnitsIn) -> UnitsOut:
    from models.xray.trace import layer_sizes

    started = perf_counter()
    loaded = await loaded_model(
        sessions, cache, checkpoint_id=body.checkpoint_id, job_id=body.job_id, model=body.model
    )
    given = model_input(loaded, text=body.text, digits=None)
    sizes = layer_sizes(loaded.model)
    if body.layer >= len(sizes):
        raise InvalidInput(
            ("body", "layer"),
            f"layer {body.layer} is out of range: this model has layers 0..{len(sizes) - 1}",
        )
    loaded_at = perf_counter()
    parts = await run_in_threadpool(_rank, loaded, given, body)
    done = perf_counter()
    return UnitsOut(
        checkpoint_id=loaded.checkpoint_id,
        layer=body.layer,
        signal=body.signal,
        positions=len(given.tokens),
        timings=Timings.between(started, loaded_at, done),
        **parts,
    )


def _rank(loaded: LoadedModel, given: Input, body: UnitsIn) -> dict[str, Any]:
    from models.xray.features import FEATURES, InvalidRegex, regex_feature
    from models.xray.trace import trace
    from models.xray.units import ConstantFeature, excerpt_window, rank_units

    text = "".join(given.tokens)
    if body.regex is not None:
        name, field = f"regex:{body.regex}", "regex"
        try:
            feature = regex_feature(text, body.regex)
        except InvalidRegex as e:
            raise InvalidInput(("body", "regex"), str(e)) from e
    else:
        assert body.feature is not None
        name, field = body.feature, "feature"
        feature = FEATURES[body.feature](text)
    traced = trace(loaded.model, given.tensor, layers=[body.layer])  # the other layers: no gates
    activations = traced.layers[body.layer][body.signal][0]  # (T, H)
    try:
        ranked = rank_units(activations, feature, body.top)
    except ConstantFeature as e:
        raise InvalidInput(("body", field), str(e)) from e
    start, end = excerpt_window(feature)
    return {
        "feature": name,
        "excerpt_start": start,
        "excerpt": text[start:end],
        "feature_values": feature[start:end],
        "units": [
            RankedUnitOut(unit=u.unit, r=u.r, values=activations[start:end, u.unit].tolist()) for u in ranked
        ],
    }
