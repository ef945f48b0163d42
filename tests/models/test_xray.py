"""The X-ray's trace equals each model's own forward pass, step by step; saturation, features and the
unit ranking on cases whose answer is known by construction."""

from __future__ import annotations

import pytest
import torch

from models.char_lstm import CharLSTM
from models.data import Vocabulary, encode_digits, random_palindromes
from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM
from models.rnn import RNN
from models.xray.features import FEATURES, InvalidRegex, in_brackets, in_quotes, line_position, regex_feature
from models.xray.saturation import saturation
from models.xray.trace import SIGNALS, cell_states, trace
from models.xray.units import ConstantFeature, correlations, rank_units

TEXT = 'He said "no (not now)" and left.\nShe said "yes".'
TOL = {"rtol": 1e-5, "atol": 1e-6}


def char_model(layers: int = 2) -> tuple[CharLSTM, Vocabulary]:
    torch.manual_seed(3)
    vocab = Vocabulary.from_text(TEXT)
    return CharLSTM(
        len(vocab), embedding_size=8, hidden_size=12, num_layers=layers, init="chrono", chrono_t_max=30
    ).eval(), vocab


def test_char_lstm_trace_equals_the_model_fed_one_character_at_a_time() -> None:
    model, vocab = char_model()
    ids = vocab.encode(TEXT)[None]  # (1, T)
    traced = trace(model, ids)
    with torch.no_grad():
        logits, _ = model(ids)
    torch.testing.assert_close(traced.logits, logits, **TOL)
    state = None
    with torch.no_grad():
        for t in range(ids.shape[1]):
            _, state = model(ids[:, t : t + 1], state)
            h, c = state  # (L, 1, H) each
            for layer in range(2):
                torch.testing.assert_close(traced.layers[layer]["h"][0, t], h[layer, 0], **TOL)
                torch.testing.assert_close(traced.layers[layer]["c"][0, t], c[layer, 0], **TOL)
    assert set(traced.layers[0]) == set(SIGNALS["char_lstm"])


def lstm_equations_hold(layer: dict[str, torch.Tensor]) -> None:
    """c(t) = i g + f c(t-1) and h = o tanh(c) between the traced signals (plain LSTM only)."""
    c_prev = torch.cat([torch.zeros_like(layer["c"][:, :1]), layer["c"][:, :-1]], dim=1)
    torch.testing.assert_close(layer["c"], layer["i"] * layer["g"] + layer["f"] * c_prev, **TOL)
    torch.testing.assert_close(layer["h"], layer["o"] * torch.tanh(layer["c"]), **TOL)


def test_char_lstm_gates_satisfy_the_cell_equations() -> None:
    model, vocab = char_model()
    for layer in trace(model, vocab.encode(TEXT)[None]).layers:
        lstm_equations_hold(layer)
        for gate in "ifo":
            assert float(layer[gate].min()) >= 0 and float(layer[gate].max()) <= 1


def palindromes(encoding: str = "one_hot", length: int = 9) -> torch.Tensor:
    digits = random_palindromes(4, length, torch.Generator().manual_seed(1))
    return encode_digits(digits, encoding)  # (4, T, D)


@pytest.mark.parametrize("cls", [LSTM, PhasedLSTM])
def test_lstm_traces_equal_the_module_on_every_prefix(cls: type[LSTM]) -> None:
    torch.manual_seed(0)
    model = cls(10, 16).eval()
    inputs = palindromes()
    traced = trace(model, inputs)
    with torch.no_grad():
        logits, _ = model(inputs)
        torch.testing.assert_close(traced.logits, logits, **TOL)
        for t in range(1, inputs.shape[1] + 1):  # a prefix's final state is the trace's at t
            _, (h, c) = model(inputs[:, :t])
            torch.testing.assert_close(traced.layers[0]["h"][:, t - 1], h, **TOL)
            torch.testing.assert_close(traced.layers[0]["c"][:, t - 1], c, **TOL)
    if cls is PhasedLSTM:
        assert isinstance(model, PhasedLSTM)
        k = model.time_gates(torch.arange(1, inputs.shape[1] + 1, dtype=torch.float32))
        torch.testing.assert_close(traced.layers[0]["k"][0], k)
        assert set(traced.layers[0]) == set(SIGNALS["phased_lstm"])
    else:
        lstm_equations_hold(traced.layers[0])


def test_rnn_trace_equals_the_module() -> None:
    torch.manual_seed(0)
    model = RNN(1, 8).eval()
    inputs = palindromes("scalar")
    traced = trace(model, inputs)
    with torch.no_grad():
        logits, h = model(inputs)
    torch.testing.assert_close(traced.logits, logits)
    torch.testing.assert_close(traced.layers[0]["h"][:, -1], h)
    assert list(traced.layers[0]) == ["h"] and saturation(traced.layers[0]) == {}


def test_a_narrowed_trace_is_bitwise_the_full_traces_columns() -> None:
    model, vocab = char_model(layers=3)
    ids = vocab.encode(TEXT)[None]
    full = trace(model, ids)
    narrowed = trace(model, ids, units=[7, 0, 3], layers=[2, 0])
    assert torch.equal(narrowed.logits, full.logits)
    assert narrowed.layers[1] == {}  # not listed: no gates computed
    for layer in (0, 2):
        assert set(narrowed.layers[layer]) == set(SIGNALS["char_lstm"])
        for name, values in narrowed.layers[layer].items():
            assert torch.equal(values, full.layers[layer][name][:, :, [7, 0, 3]]), name
    lstm = LSTM(1, 6).eval()
    inputs = palindromes("scalar")
    assert torch.equal(
        trace(lstm, inputs, units=[4]).layers[0]["c"], trace(lstm, inputs).layers[0]["c"][..., [4]]
    )


@pytest.mark.parametrize("steps", [1, 2, 16, 17, 100])
def test_cell_states_equal_the_step_by_step_recurrence(steps: int) -> None:
    generator = torch.Generator().manual_seed(steps)
    ig = torch.randn(2, 5, steps, generator=generator)
    f = torch.rand(2, 5, steps, generator=generator)
    f[:, 0, steps // 2] = 0.0  # a closed forget gate: c restarts from i g there, exactly
    c, expected = torch.zeros(2, 5), []
    for t in range(steps):
        c = ig[..., t] + f[..., t] * c
        expected.append(c)
    cells = cell_states(ig, f)
    assert cells.is_contiguous()
    torch.testing.assert_close(cells, torch.stack(expected, dim=-1), **TOL)
    assert torch.equal(cells[:, 0, steps // 2], ig[:, 0, steps // 2])


def test_trace_leaves_a_training_model_in_training_mode() -> None:
    model, vocab = char_model()
    model.train()
    trace(model, vocab.encode(TEXT)[None])
    assert model.training


def test_saturation_counts_steps_below_and_above_the_thresholds() -> None:
    i = torch.tensor([[[0.05, 0.5], [0.95, 0.5], [0.01, 0.91], [0.5, 0.09]]])  # (1, T=4, H=2)
    fractions = saturation({"i": i, "h": i})
    assert list(fractions) == ["i"]
    left, right = fractions["i"]
    assert left.tolist() == [0.5, 0.25] and right.tolist() == [0.25, 0.25]


def test_features_are_the_state_after_each_character() -> None:
    text = 'a"bc"d(e[f])g'
    assert in_quotes(text) == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert in_brackets(text) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert in_quotes("\u201cab\u201d c") == [1, 1, 1, 0, 0, 0]
    # Single curly quotes, whose closing mark is also the apostrophe (not between two letters).
    assert in_quotes("\u2018a\u2019s b\u2019 c") == [1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert line_position("ab\ncd") == [0, 1, 0, 0, 1]
    assert FEATURES["word_start"]("an ox") == [1, 0, 0, 1, 0]
    assert FEATURES["vowel"]("tea") == [0, 1, 1]
    assert regex_feature("cat sat", "[cs]a") == [1, 1, 0, 0, 1, 1, 0]
    with pytest.raises(InvalidRegex, match="not a valid regular expression"):
        regex_feature("abc", "[a")


def quote_unit_model(text: str, unit: int, big: float = 20.0) -> tuple[CharLSTM, Vocabulary]:
    """A char-LSTM with random weights but one unit wired to open on \u201c and close on \u201d: its
    cell is 1 inside the quotes and 0 outside, so it must rank first for `in_quotes`."""
    torch.manual_seed(5)
    vocab = Vocabulary.from_text(text)
    V, H = len(vocab), 8
    model = CharLSTM(V, embedding_size=V, hidden_size=H, num_layers=1).eval()
    opening, closing = (vocab.chars.index(q) for q in "\u201c\u201d")
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(V))  # the embedding is the one-hot character
        w_ih, w_hh = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0
        b_ih, b_hh = model.lstm.bias_ih_l0, model.lstm.bias_hh_l0
        rows = [gate * H + unit for gate in range(4)]  # i, f, g, o of the unit
        for tensor in (w_ih, w_hh, b_ih, b_hh):
            tensor[rows] = 0
        i, f, g, o = rows
        b_ih[i], w_ih[i, opening], w_ih[i, closing] = -big, 2 * big, 2 * big  # write on either quote
        b_ih[f], w_ih[f, opening], w_ih[f, closing] = big, -2 * big, -2 * big  # forget on either quote
        w_ih[g, opening] = big  # write 1 at the opening quote, tanh(0) = 0 at the closing one
        b_ih[o] = big
    return model, vocab


@pytest.mark.parametrize("signal", ["c", "h"])
def test_the_wired_quote_unit_ranks_first(signal: str) -> None:
    text = (
        "She said \u201cno, not now\u201d and left. He said \u201cwhy\u201d, then \u201cwell, so be it\u201d."
        * 3
    )
    model, vocab = quote_unit_model(text, unit=5)
    traced = trace(model, vocab.encode(text)[None])
    ranked = rank_units(traced.layers[0][signal][0], in_quotes(text), top=3)
    assert ranked[0].unit == 5 and ranked[0].r > 0.99
    assert all(abs(other.r) < ranked[0].r for other in ranked[1:])


def test_correlation_is_pearsons_and_refuses_a_constant_feature() -> None:
    x = torch.tensor([[1.0, 2.0, 5.0], [2.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # (T=3, H=3)
    r = correlations(x, torch.tensor([0.0, 1.0, 2.0]))
    assert r.tolist() == pytest.approx([1.0, 0.0, -1.0])  # a constant unit has r = 0
    with pytest.raises(ConstantFeature):
        correlations(x, torch.ones(3))
