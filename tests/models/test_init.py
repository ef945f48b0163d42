"""Initialisations (models/init.py): default unchanged, chrono's distribution, orthogonal and identity
blocks, each model's gate layout, determinism, the config's checks, and runs that start from them."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from models.char_lstm import CharLSTM
from models.config import INITS, PalindromeConfig, TaskConfig, TextConfig
from models.data import make_data
from models.init import chrono_bias
from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM
from models.registry import architecture_for, build_model, initialisation_for
from models.rnn import RNN
from models.train import train
from tests.models.test_train import _resume_equivalence

H = 8
PALINDROME = {"input_size": 10, "hidden_size": H, "num_classes": 10}
TEXT = {
    "type": "char_lstm",
    "vocab_size": 12,
    "embedding_size": 4,
    "hidden_size": H,
    "num_layers": 2,
    "dropout": 0.0,
}
ARCHITECTURES = {**{t: {"type": t, **PALINDROME} for t in ("rnn", "lstm", "phased_lstm")}, "char_lstm": TEXT}


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# SHA-256 (first 16 hex digits) of the weights at seed 0, computed before `init` existed: "default"
# must keep giving exactly these, so old seeds reproduce and old checkpoints mean what they meant.
DEFAULT_DIGESTS = {
    "rnn": "58d0b93c1517bdaf",
    "lstm": "69391f7215e7be30",
    "phased_lstm": "a6cea78c4f98ca0a",
    "char_lstm": "72d0538282bff012",
}


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_default_gives_bitwise_the_weights_it_gave_before(model_type: str) -> None:
    for kwargs in ({}, {"init": "default"}):
        torch.manual_seed(0)
        assert (
            digest(build_model(ARCHITECTURES[model_type], **kwargs).state_dict())
            == DEFAULT_DIGESTS[model_type]
        )


def test_a_default_run_trains_to_bitwise_what_a_model_built_without_init_options_does(
    make_palindrome_config,
) -> None:
    """The loop's default (init, curriculum and schedule all off) changes nothing about a run: it
    trains bitwise what the registry's model, built with no initialisation arguments at all, trains
    to. (A digest of trained weights would pin this machine's floating-point kernels, not the code.)"""
    config = make_palindrome_config(hidden_size=16, batch_size=32)
    torch.manual_seed(config.seed)
    plain = build_model(architecture_for(config))
    trained_plain = train(config, make_data(config), model=plain).final_checkpoint["model"]
    assert digest(train(config, make_data(config)).final_checkpoint["model"]) == digest(trained_plain)


def _lstm_layers(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    """Each LSTM layer's recurrent matrix (4H, H) and total gate bias (4H,), gates in (i, f, g, o) order."""
    if isinstance(model, CharLSTM):
        return [
            {
                "W_h": getattr(model.lstm, f"weight_hh_l{k}"),
                "b": getattr(model.lstm, f"bias_ih_l{k}") + getattr(model.lstm, f"bias_hh_l{k}"),
            }
            for k in range(model.num_layers)
        ]
    assert isinstance(model, LSTM)
    return [{"W_h": model.W_h, "b": model.b}]


def _build(model_type: str, init: str, t_max: int | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ARCHITECTURES[model_type], init=init, chrono_t_max=t_max)


LSTM_TYPES = ("lstm", "phased_lstm", "char_lstm")


def ks_statistic(samples: torch.Tensor, cdf: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance of sorted `samples` from a law whose CDF at them is `cdf`."""
    n = len(samples)
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return max(float((ranks / n - cdf).abs().max()), float((cdf - (ranks - 1) / n).abs().max()))


def test_chrono_biases_follow_log_uniform_1_to_t_max_minus_1() -> None:
    t_max, n = 60, 20_000
    torch.manual_seed(0)
    b_f = chrono_bias(n, t_max).double()
    assert b_f.min() >= 0 and b_f.max() <= math.log(t_max - 1) + 1e-6
    x, _ = b_f.sort()
    cdf = ((x.exp() - 1) / (t_max - 2)).clamp(0, 1)  # P(log U(1, T-1) <= x)
    # 1.63 / sqrt(n) is the KS critical value at the 1 % level: a wrong law (say U(0, log(T-1)),
    # whose distance from this one is ~0.3) is far beyond it.
    assert ks_statistic(x, cdf) < 1.63 / math.sqrt(n)
    uniform_in_log = (x / math.log(t_max - 1)).clamp(0, 1)
    assert ks_statistic(x, uniform_in_log) > 0.2
    # T_max <= 2 leaves no range: zero biases, no NaN.
    assert torch.equal(chrono_bias(4, 2), torch.zeros(4)) and torch.equal(chrono_bias(4, 1), torch.zeros(4))


@pytest.mark.parametrize("model_type", LSTM_TYPES)
@pytest.mark.parametrize("init", ["chrono", "chrono_orthogonal"])
def test_chrono_sets_forget_and_input_biases_in_the_models_layout(model_type: str, init: str) -> None:
    t_max = 40
    model = _build(model_type, init, t_max)
    default = _build(model_type, "default")
    for layer, layer_default in zip(_lstm_layers(model), _lstm_layers(default), strict=True):
        b_i, b_f, b_g, b_o = layer["b"].detach().chunk(4)
        assert b_f.min() >= 0 and b_f.max() <= math.log(t_max - 1) + 1e-6
        assert b_f.std() > 0.3  # drawn, not a constant
        torch.testing.assert_close(b_i, -b_f, rtol=0, atol=0)
        # The cell and output gates keep the model's own biases.
        _, _, d_g, d_o = layer_default["b"].detach().chunk(4)
        assert torch.equal(b_g, d_g) and torch.equal(b_o, d_o)


@pytest.mark.parametrize("model_type", LSTM_TYPES)
def test_the_chrono_slices_are_the_gates_the_model_computes_with(model_type: str) -> None:
    """Run one step with every weight but the biases at zero: c(1) = f c(0) + i g reads the gates out.

    With c(0) = 1 and g = 0, c(1) = sigmoid(b_f); with c(0) = 0 and g = tanh(20) ~ 1, c(1) =
    sigmoid(b_i). So the slices chrono wrote are the forget and input gates of the model's own
    equations (nn.LSTM's in the char-LSTM), not merely the slices this file assumes.
    """
    model = _build(model_type, "chrono", 30).double()
    layers = _lstm_layers(model)
    expected_f = [torch.sigmoid(layer["b"].detach()[H : 2 * H]) for layer in layers]
    expected_i = [torch.sigmoid(layer["b"].detach()[:H]) for layer in layers]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "weight" in name or name in ("W_x", "W_h", "embedding.weight"):
                p.zero_()
        if isinstance(model, PhasedLSTM):
            model.eval()
    for c0_value, g_bias, expected in ((1.0, 0.0, expected_f), (0.0, 20.0, expected_i)):
        with torch.no_grad():
            for layer_index in range(len(layers)):
                _set_g_bias(model, layer_index, g_bias)
        L = len(layers)
        if isinstance(model, CharLSTM):
            h0 = torch.zeros(L, 1, H, dtype=torch.float64)
            _, (_, c1) = model.lstm(
                torch.zeros(1, 1, 4, dtype=torch.float64), (h0, torch.full_like(h0, c0_value))
            )
            got = list(c1[:, 0])
        else:
            h0 = torch.zeros(1, H, dtype=torch.float64)
            state = (h0, torch.full_like(h0, c0_value))
            inputs = torch.zeros(1, 1, 10, dtype=torch.float64)
            if isinstance(model, PhasedLSTM):
                # A time gate fully open at t = 1 (k = 1), so c(1) is the LSTM update itself.
                with torch.no_grad():
                    model.raw_shift.fill_(-30.0)  # shift ~ 0
                    model.log_tau.fill_(math.log(100.0))
                    model.logit_r_on.fill_(0.0)  # r_on = 0.5: phi = 0.01 lies in the opening half
                k = model.time_gates(torch.tensor([1.0], dtype=torch.float64))
                _, (_, c1) = model(inputs, state, torch.tensor([1.0], dtype=torch.float64))
                got = [(c1[0] - (1 - k[0]) * c0_value) / k[0]]
            else:
                _, (_, c1) = model(inputs, state)
                got = [c1[0]]
        for ours, want in zip(got, expected, strict=True):
            torch.testing.assert_close(ours, want, rtol=1e-6, atol=1e-6)


def _set_g_bias(model: nn.Module, layer: int, value: float) -> None:
    if isinstance(model, CharLSTM):
        getattr(model.lstm, f"bias_ih_l{layer}")[2 * H : 3 * H] = value
        getattr(model.lstm, f"bias_hh_l{layer}")[2 * H : 3 * H] = 0
    else:
        assert isinstance(model, LSTM)
        model.b[2 * H : 3 * H] = value


def _assert_orthogonal(W: torch.Tensor) -> None:
    eye = torch.eye(W.shape[0], dtype=torch.float64)
    W = W.detach().double()
    torch.testing.assert_close(W @ W.T, eye, rtol=0, atol=1e-5)
    torch.testing.assert_close(W.T @ W, eye, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_type", LSTM_TYPES)
@pytest.mark.parametrize("init", ["orthogonal", "chrono_orthogonal"])
def test_orthogonal_makes_every_gate_block_orthogonal(model_type: str, init: str) -> None:
    model = _build(model_type, init, 20)
    for layer in _lstm_layers(model):
        blocks = layer["W_h"].chunk(4)  # i, f, g, o: each (H, H)
        for block in blocks:
            _assert_orthogonal(block)
        assert not torch.allclose(blocks[0], blocks[1])  # drawn per gate, not one matrix repeated
    if init == "orthogonal":  # the biases stay the model's own
        for layer, default in zip(
            _lstm_layers(model), _lstm_layers(_build(model_type, "default")), strict=True
        ):
            assert torch.equal(layer["b"], default["b"])


def test_rnn_identity_and_orthogonal() -> None:
    identity = _build("rnn", "identity")
    assert isinstance(identity, RNN)
    assert torch.equal(identity.W_hh, torch.eye(H)) and torch.equal(identity.b_h, torch.zeros(H))
    orthogonal = _build("rnn", "orthogonal")
    assert isinstance(orthogonal, RNN)
    _assert_orthogonal(orthogonal.W_hh)


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_inits_change_only_the_recurrent_matrix_and_gate_biases_and_follow_the_seed(model_type: str) -> None:
    default = dict(_build(model_type, "default").named_parameters())
    touched = {"W_hh", "b_h", "W_h", "b"} | {
        f"lstm.{w}_l{k}" for w in ("weight_hh", "bias_ih", "bias_hh") for k in (0, 1)
    }
    for init in INITS[model_type][1:]:
        model = _build(model_type, init, 25)
        again = _build(model_type, init, 25)
        other_seed = _build(model_type, init, 25, seed=1)
        for name, p in model.named_parameters():
            assert torch.equal(p, dict(again.named_parameters())[name]), (init, name)
            if name not in touched:  # the default draws come first and are left as they were
                assert torch.equal(p, default[name]), (init, name)
        assert not all(
            torch.equal(p, q) for p, q in zip(model.parameters(), other_seed.parameters(), strict=True)
        )


@pytest.mark.parametrize(
    ("model_type", "init"),
    [
        ("rnn", "chrono"),
        ("rnn", "chrono_orthogonal"),
        ("lstm", "identity"),
        ("char_lstm", "identity"),
        ("lstm", "he"),
    ],
)
def test_an_init_the_model_does_not_take_is_a_value_error(model_type: str, init: str) -> None:
    with pytest.raises(
        ValueError, match=f"init '{init}' does not apply to the {model_type} model; it accepts default"
    ):
        build_model(ARCHITECTURES[model_type], init=init, chrono_t_max=10)


def test_chrono_needs_its_t_max() -> None:
    with pytest.raises(ValueError, match="needs chrono_t_max"):
        LSTM(10, H, init="chrono")
    with pytest.raises(ValueError, match="needs chrono_t_max"):
        CharLSTM(5, init="chrono_orthogonal")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"task": "palindrome", "init": "xavier"},
            "'default', 'chrono', 'orthogonal', 'chrono_orthogonal' or 'identity'",
        ),
        ({"task": "text", "init": "xavier"}, "'default', 'chrono', 'orthogonal' or 'chrono_orthogonal'"),
        ({"task": "text", "init": "identity"}, "'default', 'chrono', 'orthogonal' or 'chrono_orthogonal'"),
        ({"task": "palindrome", "model": "rnn", "init": "chrono"}, "accepts default, identity, orthogonal"),
        (
            {"task": "palindrome", "model": "phased_lstm", "init": "identity"},
            "accepts default, chrono, orthogonal",
        ),
        ({"task": "palindrome", "chrono_t_max": 1}, "greater than or equal to 2"),
    ],
)
def test_the_config_rejects_an_init_naming_the_field_and_the_known_ones(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        TypeAdapter(TaskConfig).validate_python(body)
    (error,) = excinfo.value.errors()
    field = "chrono_t_max" if "chrono_t_max" in body else "init"
    assert error["loc"] == (body["task"], field)
    assert message in error["msg"]


def test_chrono_t_max_defaults_to_the_length_the_task_trains_on() -> None:
    assert initialisation_for(PalindromeConfig(input_length=60, init="chrono")) == {
        "init": "chrono",
        "chrono_t_max": 60,
    }
    assert initialisation_for(TextConfig(seq_length=30, init="chrono")) == {
        "init": "chrono",
        "chrono_t_max": 30,
    }
    assert initialisation_for(PalindromeConfig(input_length=60, chrono_t_max=200))["chrono_t_max"] == 200
    # Under a curriculum too: T_max is the target length, the one the model must end up remembering.
    config = PalindromeConfig(input_length=60, init="chrono", curriculum_start=10)
    assert initialisation_for(config)["chrono_t_max"] == 60


@pytest.mark.parametrize(
    ("model_type", "init"), [("lstm", "chrono_orthogonal"), ("phased_lstm", "chrono"), ("rnn", "identity")]
)
def test_a_run_starts_from_its_init_and_its_checkpoint_keeps_it(
    make_palindrome_config, model_type: str, init: str
) -> None:
    config = make_palindrome_config(
        model=model_type, init=init, hidden_size=H, train_steps=1, learning_rate=1e-12, optimizer="sgd"
    )
    result = train(config, make_data(config))
    assert result.final_checkpoint["train_config"]["init"] == init
    torch.manual_seed(config.seed)
    expected = build_model(architecture_for(config), **initialisation_for(config)).state_dict()
    for name, weights in result.final_checkpoint["model"].items():
        torch.testing.assert_close(weights, expected[name], rtol=0, atol=1e-9)


def test_resume_is_bitwise_identical_with_chrono_orthogonal(
    make_palindrome_config, make_text_config, small_text: str
) -> None:
    config = make_palindrome_config(init="chrono_orthogonal", eval_every=4, log_every=3)
    _resume_equivalence(config, make_data(config), n=6)
    text = make_text_config(init="chrono_orthogonal", num_layers=2)
    _resume_equivalence(text, make_data(text, small_text), n=4)
