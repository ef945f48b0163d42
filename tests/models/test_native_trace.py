"""The native X-ray trace (models/native/xray_trace.cpp) against the PyTorch trace and the model's own
forward: equal to float32 rounding (it is its own arithmetic, not the fused kernel's), in every signal.

The shapes are chosen for the C++ loops' edge cases: 4H a multiple of its 64-gate tile or not (H = 16,
20, 12), lengths that are not a multiple of its 16-step staging block, several rows, and gates driven
into saturation (where its exp is clamped)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import models.native
from models.char_lstm import CharLSTM
from models.xray.trace import LSTM_SIGNALS, trace

pytestmark = pytest.mark.skipif(
    models.native.load() is None, reason="the native extension is not built (python -m models.native)"
)

TOL = {"rtol": 1e-5, "atol": 1e-6}


def char_model(hidden: int, layers: int = 2, seed: int = 0) -> CharLSTM:
    torch.manual_seed(seed)
    return CharLSTM(30, embedding_size=7, hidden_size=hidden, num_layers=layers).eval()


@pytest.mark.parametrize(("hidden", "rows", "steps"), [(16, 1, 45), (20, 3, 17), (12, 2, 1), (32, 1, 300)])
def test_the_native_trace_equals_the_pytorch_trace_and_the_forward(
    hidden: int, rows: int, steps: int
) -> None:
    model = char_model(hidden)
    ids = torch.randint(0, 30, (rows, steps), generator=torch.Generator().manual_seed(steps))
    native = trace(model, ids, native=True)
    reference = trace(model, ids, native=False)
    with torch.inference_mode():
        logits, _ = model(ids)
        out, _ = model.lstm(model.embedding(ids))
    torch.testing.assert_close(native.logits, logits, **TOL)
    torch.testing.assert_close(native.layers[-1]["h"], out, **TOL)
    for layer, expected in zip(native.layers, reference.layers, strict=True):
        assert set(layer) == set(LSTM_SIGNALS)
        for name in LSTM_SIGNALS:
            assert layer[name].shape == (rows, steps, hidden), name
            torch.testing.assert_close(layer[name], expected[name], **TOL, msg=name)
            # (H, B, T) storage: each unit's series contiguous, as the answer's [units, positions] reads it.
            assert layer[name].permute(2, 0, 1).is_contiguous(), name


def test_saturated_gates_stay_finite_and_equal_the_pytorch_trace() -> None:
    model = char_model(16)
    with torch.no_grad():  # every other unit's gates pushed to +-100 and beyond: exp's clamp, 0 and 1
        push = torch.tensor([1.0, -1.0]).repeat(16) * torch.linspace(90, 300, 32)  # (2H,): +90, -96.8, ...
        for layer in range(2):
            getattr(model.lstm, f"bias_ih_l{layer}")[::2].add_(push)
    ids = torch.randint(0, 30, (1, 60), generator=torch.Generator().manual_seed(1))
    native = trace(model, ids, native=True)
    reference = trace(model, ids, native=False)
    for layer, expected in zip(native.layers, reference.layers, strict=True):
        for name in LSTM_SIGNALS:
            assert torch.isfinite(layer[name]).all(), name
            torch.testing.assert_close(layer[name], expected[name], **TOL, msg=name)
        for gate in ("i", "f", "o"):
            assert float(layer[gate].min()) < 1e-30 and float(layer[gate].max()) == 1.0, gate
        assert float(layer["g"].min()) == -1.0 and float(layer["g"].max()) == 1.0


def test_a_narrowed_native_trace_is_bitwise_the_full_traces_columns() -> None:
    model = char_model(20, layers=3)
    ids = torch.randint(0, 30, (1, 50), generator=torch.Generator().manual_seed(2))
    full = trace(model, ids, native=True)
    narrowed = trace(model, ids, units=[19, 0, 5], layers=[2, 0], native=True)
    assert torch.equal(narrowed.logits, full.logits)
    assert narrowed.layers[1] == {}
    for layer in (0, 2):
        for name, values in narrowed.layers[layer].items():
            assert torch.equal(values, full.layers[layer][name][:, :, [19, 0, 5]]), name


def test_without_a_build_the_trace_is_pytorchs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = char_model(12)
    ids = torch.randint(0, 30, (1, 20), generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(models.native, "ROOT", tmp_path)  # where trace's load() looks: nothing built
    with pytest.raises(RuntimeError, match="python -m models.native"):
        trace(model, ids, native=True)
    fallback = trace(model, ids)
    reference = trace(model, ids, native=False)
    for layer, expected in zip(fallback.layers, reference.layers, strict=True):
        for name in LSTM_SIGNALS:
            assert torch.equal(layer[name], expected[name]), name


def test_the_native_layer_refuses_what_it_cannot_read_naming_the_argument() -> None:
    native = models.native.load()
    assert native is not None
    model = char_model(12)
    weights = [getattr(model.lstm, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    x = torch.zeros(1, 5, 7)
    with pytest.raises(ValueError, match="x: expected a 3-dimensional float32 tensor on the CPU"):
        native.lstm_trace_layer(x.double(), *weights, True)
    with pytest.raises(ValueError, match=r"weights: expected w_ih \(4H, E\)"):
        native.lstm_trace_layer(torch.zeros(1, 5, 6), *weights, True)
    hidden, signals = native.lstm_trace_layer(x, *weights, False)
    assert hidden.shape == (1, 5, 12) and signals is None
