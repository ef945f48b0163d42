"""A batch's memory: one float row per stream (`BatchBuffers`), and the views a step of n rows touches
(`StepBuffers`, the typed structure that the native step reads).

Streams join and leave between steps (continuous batching): the active rows are kept compact, rows
0..n-1, so a step costs what n streams cost whatever the capacity; a leaving row is replaced by the
last one. Every per-row quantity (state, next logits, sampling settings, penalty counts, uniforms)
lives in one float row, so that move is a single copy. Scratch is allocated once per capacity and
overwritten every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models.decode.fused import FusedCharLSTM, Gates
from models.decode.processors import PENALTY_SETTINGS, PenaltyBuffers
from models.decode.sampler import SETTINGS_AFTER_KEEP_K, SamplerBuffers

# How many uniforms of each stream sit in its row at a time: refilling costs one copy per stream
# every UNIFORM_WINDOW steps.
UNIFORM_WINDOW = 128


class RowLayout:
    """Where each quantity sits in a stream's row:

        h (L*H) | c (L*H) | next logits (V) | settings (V + 4, see sampler.settings_row)
        | penalty counts (V) | penalty settings (3, see processors.penalty_row) | uniforms (W)

    h of all layers side by side makes [h_{l-1}, h_l], layer l's matmul input, a plain slice; h, c and
    the logits side by side are what priming gives (`state`). The penalties' window counts live here,
    not beside the stream, so that the one copy that moves a row moves them too.
    """

    def __init__(self, weights: FusedCharLSTM) -> None:
        H, L, V = weights.hidden_size, weights.num_layers, weights.vocab_size
        self.h = [slice(layer * H, (layer + 1) * H) for layer in range(L)]
        self.layer_inputs = [slice((layer - 1) * H, (layer + 1) * H) for layer in range(1, L)]
        self.c = [slice(L * H + layer * H, L * H + (layer + 1) * H) for layer in range(L)]
        self.logits = slice(2 * L * H, 2 * L * H + V)
        self.state = slice(0, self.logits.stop)  # h | c | next logits
        self.settings = slice(self.logits.stop, self.logits.stop + V + SETTINGS_AFTER_KEEP_K)
        self.penalty_counts = slice(self.settings.stop, self.settings.stop + V)
        self.penalty_settings = slice(self.penalty_counts.stop, self.penalty_counts.stop + PENALTY_SETTINGS)
        self.all_settings = slice(self.settings.start, self.penalty_settings.stop)  # what a join writes
        self.uniforms = slice(self.penalty_settings.stop, self.penalty_settings.stop + UNIFORM_WINDOW)
        self.width = self.uniforms.stop


@dataclass(eq=False)
class StepBuffers:
    """Every tensor one step of `rows` active rows touches: the penalties', the sampler's, the LSTM's.

    Both steps run on these same tensors (the PyTorch one in sampler.sample and FusedCharLSTM.advance,
    the native one in decode_step.cpp), which is why their results are bitwise the same. The native
    Stepper reads the fields by name and checks their dtypes and shapes when it is made, naming the
    field it refuses: rename or reshape one here and decode_step.cpp in the same change.
    """

    rows: int  # n
    penalties: PenaltyBuffers  # window counts, penalty settings and scratch (Python only, before the step)
    sampling: SamplerBuffers  # logits, settings, uniforms, sampler scratch and the chosen ids
    h: tuple[torch.Tensor, ...]  # L x (n, H) float32, views of the row table
    c: tuple[torch.Tensor, ...]  # L x (n, H) float32, views of the row table
    layer_inputs: tuple[torch.Tensor, ...]  # (L - 1) x (n, 2H) float32: [h_{l-1}, h_l] of layer l
    gates: tuple[torch.Tensor, ...]  # L x (n, 4H) float32 scratch, (i, f, o, g)
    tanh_c: torch.Tensor  # (n, H) float32 scratch
    gate_views: tuple[Gates, ...] = field(init=False)  # the PyTorch step's views of `gates`

    def __post_init__(self) -> None:
        self.gate_views = tuple(Gates.of(g) for g in self.gates)

    def head(self, n: int) -> StepBuffers:
        """The same buffers for their first n rows (views: the same memory)."""
        return StepBuffers(
            rows=n,
            penalties=self.penalties.head(n),
            sampling=self.sampling.head(n),
            h=tuple(t[:n] for t in self.h),
            c=tuple(t[:n] for t in self.c),
            layer_inputs=tuple(t[:n] for t in self.layer_inputs),
            gates=tuple(t[:n] for t in self.gates),
            tanh_c=self.tanh_c[:n],
        )


class BatchBuffers:
    """The row table of a batch of `capacity` streams and its scratch; `for_rows(n)` the step's views."""

    def __init__(self, weights: FusedCharLSTM, capacity: int) -> None:
        H, L, device = weights.hidden_size, weights.num_layers, weights.device
        self.layout = layout = RowLayout(weights)
        self.rows = torch.zeros(capacity, layout.width, device=device)  # (capacity, width)
        rows = self.rows
        self._full = StepBuffers(
            rows=capacity,
            penalties=PenaltyBuffers.over(rows[:, layout.penalty_counts], rows[:, layout.penalty_settings]),
            sampling=SamplerBuffers.over(
                rows[:, layout.logits], rows[:, layout.settings], rows[:, layout.uniforms]
            ),
            h=tuple(rows[:, s] for s in layout.h),
            c=tuple(rows[:, s] for s in layout.c),
            layer_inputs=tuple(rows[:, s] for s in layout.layer_inputs),
            gates=tuple(torch.empty(capacity, 4 * H, device=device) for _ in range(L)),
            tanh_c=torch.empty(capacity, H, device=device),
        )
        self._heads: dict[int, StepBuffers] = {}

    def for_rows(self, n: int) -> StepBuffers:
        """The views a step of rows 0..n-1 touches, made once per n."""
        buffers = self._heads.get(n)
        if buffers is None:
            buffers = self._heads[n] = self._full.head(n)
        return buffers

    def write(self, row: int, state: torch.Tensor, settings: list[float]) -> None:
        """A joining stream's row: its primed state (h | c | next logits), then its sampling settings
        and its penalty part, one list (`settings_row` + `penalty_row`)."""
        self.rows[row, self.layout.state] = state
        self.rows[row, self.layout.all_settings] = torch.tensor(settings)

    def move(self, source: int, destination: int) -> None:
        self.rows[destination] = self.rows[source]

    def load_uniforms(self, row: int, start: int, uniforms: torch.Tensor | None) -> None:
        """The row's uniforms for window columns start.. (as many as there are); None zeros them."""
        window = self.rows[row, self.layout.uniforms][start:]
        if uniforms is None:
            window.zero_()
        else:
            window[: len(uniforms)] = uniforms
