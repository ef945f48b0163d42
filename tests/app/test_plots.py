"""The figures app.services.plots draws: titles, axis labels, legends, the log scale, the shaded bands."""

from __future__ import annotations

import sys

from app.services import plots
from tests.api.png import assert_png


def test_matplotlib_renders_without_pyplot_on_agg() -> None:
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    figure = plots.new_figure()
    assert type(figure.canvas).__name__ == "FigureCanvasAgg"
    assert "matplotlib.pyplot" not in sys.modules  # no global figure state shared by requests


def test_sweep_figure_has_a_line_and_band_per_hue() -> None:
    bands = [
        plots.Band("model=rnn", [5, 10, 20], [0.9, 0.4, 0.1], [0.8, 0.3, 0.1], [1.0, 0.5, 0.12]),
        plots.Band("model=lstm", [5, 10, 20], [1.0, 1.0, 0.99], [1.0, 1.0, 0.98], [1.0, 1.0, 1.0]),
    ]
    figure = plots.sweep_figure(
        bands, title="acc", x_label="input_length", y_label="val_accuracy", chance=0.1
    )
    (axes,) = figure.axes
    assert axes.get_title() == "acc"
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("input_length", "val_accuracy")
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["model=rnn", "model=lstm", "chance (0.1)"]
    assert len(axes.collections) == 2  # one min-max band per hue
    assert_png(plots.to_png(figure))


def test_gradient_flow_figure_is_on_a_log_scale() -> None:
    curves = {"rnn": ([1, 2, 3], [1e-6, 1e-3, 1.0]), "lstm": ([1, 2, 3], [1e-2, 1e-1, 1.0])}
    figure = plots.gradient_flow_figure(curves, title="flow")
    (axes,) = figure.axes
    assert axes.get_yscale() == "log" and axes.get_title() == "flow"
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["rnn", "lstm"]
    assert_png(plots.to_png(figure))


def test_time_gate_figure_shades_the_open_phases() -> None:
    t = [0.0, 0.5, 1.0, 5.0, 9.9]
    phi = [x / 10 for x in t]
    figure = plots.time_gate_figure(t, phi, [0.0, 1.0, 0.0, 0.0, 0.0], r_on=0.2, title="gate")
    (axes,) = figure.axes
    assert len(axes.lines) == 2 and len(axes.collections) == 1  # k, phi; the open-phase shading
    assert "open" in axes.get_legend().get_texts()[-1].get_text()
    assert_png(plots.to_png(figure))
