"""How often each gate unit is saturated: Karpathy, Johnson & Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks", figure 3.

A sigmoid gate (i, f, o) is left-saturated at a step when it is below 0.1 (nearly closed) and
right-saturated above 0.9 (nearly open). Per unit, the fractions of steps spent in each are a point
of the paper's scatter: forget gates on the right edge are integrators that remember; units that sit
in neither are the ones whose value depends on the input.
"""

from __future__ import annotations

import torch

from models.xray.limits import LEFT_SATURATED, RIGHT_SATURATED
from models.xray.trace import SIGMOID_GATES


def saturation(layer: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per sigmoid gate of a traced layer (values (B, T, H)): (left, right) fractions, each (H,), over
    every step of every sequence. Empty for a layer with no gates (the vanilla RNN)."""
    fractions = {}
    for gate in SIGMOID_GATES:
        if gate in layer:
            values = layer[gate]  # reduced over (B, T) as it lies: no reshape, which would copy a view
            steps = values.shape[0] * values.shape[1]
            # Counted, then divided: no float copy of every value first.
            left = (values < LEFT_SATURATED).sum(dim=(0, 1)) / steps
            right = (values > RIGHT_SATURATED).sum(dim=(0, 1)) / steps
            fractions[gate] = (left, right)
    return fractions
