"""A stream's recurrent state kept between requests (a session's), and the clamps held on it.

A CharLSTM's whole memory after some text is h and c, each (L, H): the next character's logits are a
function of h's top layer (`FusedCharLSTM.readout`), so `StartState` is all a stream needs to continue
that text without priming it again. Flattened, h | c is the first part of a decode batch's row
(models/decode/buffers.py), which is how a batch takes it in and gives it back.

A `Clamp` holds cell unit c[layer][unit] at `value` after each of the next `steps` characters is
consumed (appended or generated): the step that reads the following character starts from it, so
the unit's memory is forced while the rest of the network runs freely (Karpathy, Johnson & Fei-Fei
2015, "Visualizing and Understanding Recurrent Networks", found single cells tracking quotes and line
length; forcing one is the causal version of that reading). The cell, not h: c is read only by its own
layer's next step, so the step-by-step batch and the layer-by-layer `FusedCharLSTM.feed` apply it at
the same point of the arithmetic and agree bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from models.decode.limits import MAX_CLAMP_STEPS, MAX_CLAMP_VALUE, MAX_CLAMPS


@dataclass(frozen=True)
class Clamp:
    """Hold c[layer][unit] at `value` after each of the next `steps` characters."""

    layer: int
    unit: int
    value: float
    steps: int

    def check(self, num_layers: int, hidden_size: int) -> None:
        """ValueError naming the field that is out of range for an L x H model."""
        for name, value, stop in (("layer", self.layer, num_layers), ("unit", self.unit, hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < stop:
                raise ValueError(f"{name} must be an integer in [0, {stop - 1}], got {value!r}")
        if not math.isfinite(self.value) or abs(self.value) > MAX_CLAMP_VALUE:
            raise ValueError(f"value must be within +-{MAX_CLAMP_VALUE:g}, got {self.value!r}")
        if isinstance(self.steps, bool) or not 1 <= self.steps <= MAX_CLAMP_STEPS:
            raise ValueError(f"steps must be an integer in [1, {MAX_CLAMP_STEPS}], got {self.steps!r}")


def after(clamps: Sequence[Clamp], consumed: int) -> tuple[Clamp, ...]:
    """What is still pending once `consumed` more characters have been read."""
    return tuple(Clamp(c.layer, c.unit, c.value, c.steps - consumed) for c in clamps if c.steps > consumed)


def with_clamp(clamps: Sequence[Clamp], clamp: Clamp) -> tuple[Clamp, ...]:
    """`clamps` with `clamp` added; it replaces a pending clamp of the same unit. ValueError past
    MAX_CLAMPS."""
    kept = tuple(c for c in clamps if (c.layer, c.unit) != (clamp.layer, clamp.unit))
    if len(kept) >= MAX_CLAMPS:
        raise ValueError(f"at most {MAX_CLAMPS} clamps may be pending on one state")
    return (*kept, clamp)


@dataclass(frozen=True, eq=False)
class StartState:
    """Where a stream starts instead of priming a seed text: h and c (L, H) float32 after the text it
    continues, and the clamps pending on them."""

    h: torch.Tensor
    c: torch.Tensor
    clamps: tuple[Clamp, ...] = ()
    # h | c as one vector, when the state came as one (h and c views of it): a batch row copies it whole.
    stored_flat: torch.Tensor | None = field(default=None, repr=False)
    # h | c | next logits, the first part of the batch row it joins with (FusedCharLSTM.start_row), when
    # made beforehand: made where the request is, the engine thread only copies it.
    row: torch.Tensor | None = field(default=None, repr=False)

    @property
    def flat(self) -> torch.Tensor:
        """h | c as one (2 * L * H,) vector: the first part of a batch row."""
        if self.stored_flat is not None:
            return self.stored_flat
        return torch.cat([self.h.flatten(), self.c.flatten()])

    @classmethod
    def zero(cls, num_layers: int, hidden_size: int) -> StartState:
        """The state before any text: what priming starts from."""
        return cls(torch.zeros(num_layers, hidden_size), torch.zeros(num_layers, hidden_size))

    def clamped(self, clamp: Clamp) -> StartState:
        """With `clamp` pending and already applied to c: the next character's step reads it."""
        c = self.c.clone()
        c[clamp.layer, clamp.unit] = clamp.value
        return StartState(self.h, c, with_clamp(self.clamps, clamp))
