"""An experiment's grid: its sweep axes checked, then expanded into one training request per point.

Everything here runs before a row is written, so a bad axis, value or grid size stores and queues
nothing. Errors name the value the way a user would point at it: `sweep.input_length[2]`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.core.errors import InvalidInput
from app.schemas.experiments import (
    EXPERIMENT_FIELDS,
    PalindromeExperimentRequest,
    TextExperimentRequest,
)
from app.schemas.training import PalindromeTrainRequest, TextTrainRequest

TrainRequestModel = type[PalindromeTrainRequest] | type[TextTrainRequest]


@dataclass(frozen=True)
class Grid:
    base: dict[str, Any]  # the training fields every point shares, the swept ones left out
    sweep: dict[str, list[Any]]  # the axes with their values as validated (e.g. "5" -> 5)
    points: list[PalindromeTrainRequest | TextTrainRequest]  # product order, first axis slowest


def _invalid(loc: tuple[str | int, ...], message: str) -> InvalidInput:
    field = ".".join(str(part) for part in loc if isinstance(part, str))
    if isinstance(loc[-1], int):
        field += f"[{loc[-1]}]"
    return InvalidInput(("body", *loc), message, field=field)


def expand(request: PalindromeExperimentRequest | TextExperimentRequest, *, max_jobs: int) -> Grid:
    """Check the axes, the grid size and every value, then build every point's training request."""
    model: TrainRequestModel = (
        PalindromeTrainRequest if isinstance(request, PalindromeExperimentRequest) else TextTrainRequest
    )
    sweep = request.sweep
    base = request.model_dump(exclude=set(EXPERIMENT_FIELDS) | set(sweep))
    _check_axes(request, model)
    sizes = [len(values) for values in sweep.values()]
    if math.prod(sizes) > max_jobs:
        shape = " x ".join(map(str, sizes)) + (f" = {math.prod(sizes)}" if len(sizes) > 1 else "")
        raise _invalid(
            ("sweep",),
            f"the grid has {shape} points, more than the limit of {max_jobs} jobs per experiment "
            "(RNNLAB_MAX_EXPERIMENT_JOBS)",
        )
    validated = {axis: _axis_values(model, base, axis, values) for axis, values in sweep.items()}
    points = []
    for combination in itertools.product(*validated.values()):
        params = dict(zip(validated, combination, strict=True))
        try:
            points.append(model.model_validate(base | params))
        except ValidationError as exc:  # a rule across fields that no single value breaks alone
            raise _invalid(("sweep",), f"grid point {params}: {exc.errors()[0]['msg']}") from exc
    return Grid(base=base, sweep=validated, points=points)


def _check_axes(
    request: PalindromeExperimentRequest | TextExperimentRequest, model: TrainRequestModel
) -> None:
    if not request.sweep:
        raise _invalid(("sweep",), 'give at least one axis, e.g. {"seed": [0, 1]}')
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
