"""Which units track a feature of the text: Pearson's r between a unit's activation and the feature
over every position, ranked by |r| (a unit that is low inside quotes tracks them as well as one that
is high: the sign says which way)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.xray.limits import EXCERPT_CHARS


class ConstantFeature(ValueError):
    """A feature with one value over the whole text correlates with nothing."""


@dataclass(frozen=True)
class RankedUnit:
    unit: int
    r: float  # signed Pearson correlation


def correlations(activations: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """activations (T, H), feature (T,) -> r (H,); a unit that never changes has r = 0."""
    x = activations.double() - activations.double().mean(dim=0)
    y = feature.double() - feature.double().mean()
    y_norm = y.norm()
    if float(y_norm) == 0.0:
        raise ConstantFeature(
            "the feature has the same value at every position of this text: no unit can track it"
        )
    x_norm = x.norm(dim=0)
    r = (x * y[:, None]).sum(dim=0) / (x_norm * y_norm)
    return torch.where(x_norm > 0, r, torch.zeros_like(r))


def rank_units(activations: torch.Tensor, feature: list[float], top: int) -> list[RankedUnit]:
    """The `top` units with the largest |r|, largest first (ties: the lower unit first)."""
    r = correlations(activations, torch.tensor(feature))
    order = sorted(range(len(r)), key=lambda unit: (-abs(float(r[unit])), unit))
    return [RankedUnit(unit, float(r[unit])) for unit in order[:top]]


def excerpt_window(feature: list[float], length: int = EXCERPT_CHARS) -> tuple[int, int]:
    """[start, end) of an excerpt that shows the feature change: from a little before its first change."""
    first_change = next((n for n in range(1, len(feature)) if feature[n] != feature[n - 1]), 0)
    start = max(0, min(first_change - length // 4, len(feature) - length))
    return start, min(len(feature), start + length)
