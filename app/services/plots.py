"""PNG figures, drawn server-side with matplotlib's object API on the Agg canvas.

Agg is selected before anything else of matplotlib loads, and pyplot is never imported: pyplot keeps
global "current figure" state that concurrent requests in the API's thread pool would share, while a
`Figure` with its own `FigureCanvasAgg` belongs to one request. Every figure has a title, axis
labels and (where there is more than one series) a legend.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FIGSIZE = (8.0, 5.0)  # inches
DPI = 100  # so a PNG is 800 x 500 pixels


@dataclass(frozen=True)
class Band:
    """One hue's line: the mean over the grid points that share x, and their min and max."""

    label: str
    x: list[float] | list[str]
    mean: list[float]
    low: list[float]
    high: list[float]


MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", "-.", ":")
TITLE_WIDTH = 80  # characters that fit across a FIGSIZE figure at the default title size


def set_title(axes: Axes, title: str) -> None:
    """The title wrapped to the figure's width: a long experiment name must not run off the image."""
    axes.set_title(textwrap.fill(title, TITLE_WIDTH))


def new_figure() -> Figure:
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="tight")
    FigureCanvasAgg(figure)
    return figure


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def sweep_figure(
    bands: Sequence[Band], *, title: str, x_label: str, y_label: str, chance: float | None = None
) -> Figure:
    """A metric against one sweep axis, one line per hue value, shaded between min and max."""
    figure = new_figure()
    axes = figure.add_subplot()
    for i, band in enumerate(bands):
        # Lines often coincide (two models both at 100 %): each later one is drawn thinner, with a
        # smaller marker of another shape on top, so none hides another.
        (line,) = axes.plot(
            band.x,
            band.mean,
            marker=MARKERS[i % len(MARKERS)],
            markersize=max(9 - 2 * i, 3),
            linewidth=max(2.5 - 0.5 * i, 1),
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            label=band.label,
        )
        axes.fill_between(band.x, band.low, band.high, color=line.get_color(), alpha=0.2)
    if chance is not None:
        axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:g})")
    if not bands:
        axes.text(0.5, 0.5, "no values recorded yet", ha="center", va="center", transform=axes.transAxes)
    set_title(axes, title)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(alpha=0.3)
    if bands or chance is not None:
        axes.legend()
    return figure


def curves_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *, title: str) -> Figure:
    """Metric curves against the training step, one line per metric."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, (steps, values) in curves.items():
        axes.plot(steps, values, label=name)
    if not any(steps for steps, _ in curves.values()):
        axes.text(0.5, 0.5, "no values recorded yet", ha="center", va="center", transform=axes.transAxes)
    set_title(axes, title)
    axes.set_xlabel("step")
    axes.set_ylabel("value")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def gradient_flow_figure(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *, title: str
) -> Figure:
    """||dL/dh(t)|| against t on a log scale, one line per model state: vanishing is a falling line."""
    figure = new_figure()
    axes = figure.add_subplot()
    for label, (t, grad_norm) in curves.items():
        # A norm of exactly 0 (no path from h(t) to the loss) has no place on a log axis: left out.
        axes.plot(t, [g if g > 0 else float("nan") for g in grad_norm], marker=".", label=label)
    axes.set_yscale("log")
    set_title(axes, title)
    axes.set_xlabel("time step t (the loss is taken at the last step)")
    axes.set_ylabel("||dL/dh(t)||")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    return figure


def memory_horizon_figure(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *, title: str
) -> Figure:
    """The mean ||d log p / d e(x_{t-k})|| against k on a log scale, one line per model: a model that
    forgets is a line that falls; how far it stays up is how far back the model reads."""
    figure = new_figure()
    axes = figure.add_subplot()
    for i, (label, (k, norms)) in enumerate(curves.items()):
        # An exact 0 (no path back that far) has no place on a log axis: left out, as in gradient flow.
        axes.plot(
            k,
            [n if n > 0 else float("nan") for n in norms],
            marker=MARKERS[i % len(MARKERS)],
            markersize=3,
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            label=label,
        )
    if not curves:
        axes.text(0.5, 0.5, "no checkpoints yet", ha="center", va="center", transform=axes.transAxes)
    else:
        axes.legend()
    axes.set_yscale("log")
    set_title(axes, title)
    axes.set_xlabel("k, characters back from the prediction (0: the last one read)")
    axes.set_ylabel("mean ||d log p(next char) / d embedding(t - k)||")
    axes.grid(alpha=0.3, which="both")
    return figure


def time_gate_figure(
    t: Sequence[float], phi: Sequence[float], k: Sequence[float], *, r_on: float, title: str
) -> Figure:
    """The Phased LSTM time gate k(t), its phase phi(t), and the open phases (phi < r_on) shaded."""
    figure = new_figure()
    axes = figure.add_subplot()
    axes.plot(t, k, label="k(t), the gate")
    axes.plot(t, phi, linestyle=":", label="phi(t), the phase")
    is_open = [p < r_on for p in phi]
    axes.fill_between(
        t, 0, 1, where=is_open, color="tab:green", alpha=0.15, label=f"open (phi < r_on = {r_on:g})"
    )
    set_title(axes, title)
    axes.set_xlabel("t")
    axes.set_ylabel("value")
    axes.set_ylim(-0.05, 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    return figure


GATE_COLOURS = {"i": "tab:blue", "f": "tab:green", "o": "tab:red"}
GATE_NAMES = {"i": "input gate i", "f": "forget gate f", "o": "output gate o"}


def gate_saturation_figure(
    layers: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]], *, title: str
) -> Figure:
    """Karpathy, Johnson & Fei-Fei 2015, figure 3: per unit, the fraction of steps a gate is left-
    saturated (< 0.1) against right-saturated (> 0.9), one panel per layer, one colour per gate.
    Points sit in the triangle under x + y = 1; a forget gate on the y axis is a unit that remembers."""
    figure = new_figure()
    panels = figure.subplots(1, len(layers), squeeze=False)[0]
    for n, (axes, gates) in enumerate(zip(panels, layers, strict=True)):
        axes.plot([0, 1], [1, 0], color="0.8", linewidth=1)
        for gate, (left, right) in gates.items():
            axes.scatter(left, right, s=12, alpha=0.6, color=GATE_COLOURS[gate], label=GATE_NAMES[gate])
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.set_aspect("equal")
        axes.set_title(f"layer {n}")
        axes.set_xlabel("fraction left-saturated (< 0.1)")
        if n == 0:
            axes.set_ylabel("fraction right-saturated (> 0.9)")
        axes.grid(alpha=0.3)
    panels[0].legend(loc="upper right", fontsize="small")
    figure.suptitle(textwrap.fill(title, TITLE_WIDTH))
    return figure
