"""An experiment's grid: its sweep axes checked, then expanded into one training request per point.

Everything here runs before a row is written, so a bad axis, value or grid size stores and queues
nothing. Errors name the value the way a user would point at it: `sweep.input_length[2]`.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.core.errors import InvalidInput
from app.schemas.experiments import (
    EXPERIMENT_FIELDS,
    MAX_VARIANTS,
    VARIANT_AXIS,
    VARIANT_NAME,
    PalindromeExperimentRequest,
    TextExperimentRequest,
)
from app.schemas.training import PalindromeTrainRequest, TextTrainRequest

TrainRequestModel = type[PalindromeTrainRequest] | type[TextTrainRequest]


@dataclass(frozen=True)
class Grid:
    base: dict[str, Any]  # the training fields every point shares, the swept ones left out
    # The axes with their values as validated (e.g. "5" -> 5); with variants, VARIANT_AXIS (their
    # names) is the first axis.
    sweep: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]] | None  # name -> its fields, as given
    points: list[PalindromeTrainRequest | TextTrainRequest]  # product order, first axis slowest


def _invalid(loc: tuple[str | int, ...], message: str) -> InvalidInput:
    field = ".".join(str(part) for part in loc if isinstance(part, str))
    if isinstance(loc[-1], int):
        field += f"[{loc[-1]}]"
    return InvalidInput(("body", *loc), message, field=field)


def expand(request: PalindromeExperimentRequest | TextExperimentRequest, *, max_jobs: int) -> Grid:
    """Check the axes, the variants, the grid size and every value, then build every point's request."""
    model: TrainRequestModel = (
        PalindromeTrainRequest if isinstance(request, PalindromeExperimentRequest) else TextTrainRequest
    )
    sweep = request.sweep
    base = request.model_dump(exclude=set(EXPERIMENT_FIELDS) | set(sweep))
    _check_axes(request, model)
    variants = _checked_variants(request, model, base)
    sizes = ([len(variants)] if variants else []) + [len(values) for values in sweep.values()]
    if math.prod(sizes) > max_jobs:
        shape = " x ".join(map(str, sizes)) + (f" = {math.prod(sizes)}" if len(sizes) > 1 else "")
        raise _invalid(
            ("variants" if variants and not sweep else "sweep",),
            f"the grid has {shape} points, more than the limit of {max_jobs} jobs per experiment "
            "(RNNLAB_MAX_EXPERIMENT_JOBS)",
        )
    validated = {axis: _axis_values(model, base, axis, values) for axis, values in sweep.items()}
    arms: dict[str | None, dict[str, Any]] = {None: {}}
    if variants:
        arms = {name: fields for name, fields in variants.items()}
    points = []
    for name, fields in arms.items():
        for combination in itertools.product(*validated.values()):
            params = dict(zip(validated, combination, strict=True))
            try:
                points.append(model.model_validate(base | fields | params))
            except ValidationError as exc:  # a rule across fields that no single value breaks alone
                where = params if name is None else {VARIANT_AXIS: name} | params
                raise _invalid(("sweep",), f"grid point {where}: {exc.errors()[0]['msg']}") from exc
    axes = ({VARIANT_AXIS: list(variants)} if variants else {}) | validated
    return Grid(base=base, sweep=axes, variants=variants, points=points)


def _checked_variants(
    request: PalindromeExperimentRequest | TextExperimentRequest,
    model: TrainRequestModel,
    base: dict[str, Any],
) -> dict[str, dict[str, Any]] | None:
    """Each variant's name and fields checked, and each validated with the base (errors name the field)."""
    variants = request.variants
    if variants is None:
        return None
    if not variants:
        raise _invalid(
            ("variants",), 'give at least one variant, e.g. {"adam": {"optimizer": "adam"}}, or leave it out'
        )
    if len(variants) > MAX_VARIANTS:
        raise _invalid(("variants",), f"{len(variants)} variants, more than the limit of {MAX_VARIANTS}")
    allowed = set(model.model_fields) - {"task"}
    seen: dict[str, str] = {}  # a variant's full config (as JSON) -> its name
    for name, fields in variants.items():
        if not re.fullmatch(VARIANT_NAME, name):
            raise _invalid(
                ("variants", name),
                "a variant's name has 1 to 40 letters, digits, _ . + - and starts with a letter or digit",
            )
        for field in fields:
            if field not in allowed:
                raise _invalid(("variants", name, field), f"not a field of a {request.task} job")
            if field in request.sweep:
                raise _invalid(("variants", name, field), "is also a sweep axis; give it in one place")
        try:
            point = model.model_validate(base | fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise _invalid(("variants", name, *map(str, error["loc"])), error["msg"]) from exc
        key = point.model_dump_json()
        if key in seen:
            raise _invalid(("variants", name), f"gives the same job as variants.{seen[key]}")
        seen[key] = name
    return variants


def _check_axes(
    request: PalindromeExperimentRequest | TextExperimentRequest, model: TrainRequestModel
) -> None:
    if not request.sweep and not request.variants:
        raise _invalid(("sweep",), 'give at least one axis, e.g. {"seed": [0, 1]}, or variants')
    if VARIANT_AXIS in request.sweep:
        raise _invalid(("sweep", VARIANT_AXIS), "is the variants' axis; name recipes in `variants`")
    allowed = sorted(set(model.model_fields) - {"task"})
    for axis, values in request.sweep.items():
        if axis not in allowed:
            raise _invalid(
                ("sweep", axis), f"not a field of a {request.task} job; expected one of {', '.join(allowed)}"
            )
        # Given twice is more often a slip than an intent, and "the sweep wins" would hide it.
        if axis in request.model_fields_set:
            raise _invalid(("sweep", axis), "is also given outside the sweep; give it in one place")
        if not values:
            raise _invalid(("sweep", axis), "an axis needs at least one value")


def _axis_values(model: TrainRequestModel, base: dict[str, Any], axis: str, values: list[Any]) -> list[Any]:
    """Each value validated with the base, so the error names the value, not a grid point."""
    validated: list[Any] = []
    for index, value in enumerate(values):
        try:
            point = model.model_validate(base | {axis: value})
        except ValidationError as exc:
            errors = exc.errors()
            own = [e for e in errors if e["loc"][:1] == (axis,)] or errors
            raise _invalid(("sweep", axis, index), own[0]["msg"]) from exc
        value = getattr(point, axis)
        if value in validated:
            raise _invalid(
                ("sweep", axis, index), f"{value!r} repeats sweep.{axis}[{validated.index(value)}]"
            )
        validated.append(value)
    return validated
