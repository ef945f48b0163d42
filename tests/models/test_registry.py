"""Model registry: config -> architecture dict -> model, failing loudly on anything unexpected."""

from __future__ import annotations

import pytest
import torch

from models.config import PalindromeConfig, TextConfig
from models.registry import MODEL_TYPES, architecture_for, build_model

PALINDROME = {"input_size": 10, "hidden_size": 8, "num_classes": 10}
TEXT = {
    "type": "char_lstm",
    "vocab_size": 7,
    "embedding_size": 6,
    "hidden_size": 8,
    "num_layers": 2,
    "dropout": 0.1,
}


def test_unknown_type_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"model type 'gru' is not recognized; expected one of rnn, lstm"):
        build_model({"type": "gru", **PALINDROME})


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        (PALINDROME, "no 'type'"),
        ({"type": "lstm", "input_size": 10, "num_classes": 10}, "missing 'hidden_size'"),
        ({"type": "lstm", "extra": 1, **PALINDROME}, "unexpected 'extra'"),
        ({"type": "rnn", **PALINDROME, "hidden_size": 0}, "'hidden_size' must be a positive integer"),
        ({"type": "rnn", **PALINDROME, "hidden_size": 8.0}, "'hidden_size' must be a positive integer"),
        ({"type": "rnn", **PALINDROME, "hidden_size": True}, "'hidden_size' must be a positive integer"),
        ({**TEXT, "dropout": 1.0}, r"'dropout' must be a number in \[0, 1\)"),
        ({**TEXT, "dropout": "0.1"}, "'dropout' must be a number"),
        (["lstm"], "must be a dict"),
    ],
)
def test_invalid_architecture_is_rejected(architecture: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(architecture)


@pytest.mark.parametrize("model_type", ["rnn", "lstm", "phased_lstm"])
@pytest.mark.parametrize(("encoding", "input_size"), [("one_hot", 10), ("scalar", 1)])
def test_palindrome_models_build_and_run(model_type: str, encoding: str, input_size: int) -> None:
    config = PalindromeConfig(model=model_type, hidden_size=8, input_encoding=encoding)
    architecture = architecture_for(config)
    assert architecture == {"type": model_type, "input_size": input_size, "hidden_size": 8, "num_classes": 10}
    model = build_model(architecture)
    logits, state = model(torch.randn(3, 5, input_size))
    assert logits.shape == (3, 5, 10)
    if model_type == "rnn":
        assert state.shape == (3, 8)
    else:
        assert [s.shape for s in state] == [(3, 8), (3, 8)]
    logits, _ = model(torch.randn(3, 2, input_size), state)  # continues from a state
    assert logits.shape == (3, 2, 10)


def test_char_lstm_builds_and_runs() -> None:
    config = TextConfig(hidden_size=8, num_layers=2, dropout=0.1, embedding_size=6)
    architecture = architecture_for(config, vocab_size=7)
    assert architecture == TEXT
    model = build_model(architecture)
    logits, (h, c) = model(torch.randint(0, 7, (3, 5)))
    assert logits.shape == (3, 5, 7)
    assert h.shape == c.shape == (2, 3, 8)
    logits, _ = model(torch.randint(0, 7, (3, 4)), (h, c))
    assert logits.shape == (3, 4, 7)


def test_text_config_needs_vocab_size() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        architecture_for(TextConfig())


def test_every_type_is_buildable() -> None:
    for model_type in MODEL_TYPES:
        keys = TEXT if model_type == "char_lstm" else PALINDROME
        assert isinstance(build_model({**keys, "type": model_type}), torch.nn.Module)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_models_run_on_cuda_like_on_cpu(model_type: str) -> None:
    torch.manual_seed(0)
    if model_type == "char_lstm":
        architecture, inputs = {**TEXT, "dropout": 0.0}, torch.randint(0, 7, (3, 5))
    else:
        architecture, inputs = {**PALINDROME, "type": model_type}, torch.randn(3, 5, 10)
    model = build_model(architecture).double()
    logits, _ = model(inputs if model_type == "char_lstm" else inputs.double())
    model.cuda()
    cuda_logits, _ = model(inputs.cuda() if model_type == "char_lstm" else inputs.double().cuda())
    cuda_logits.sum().backward()  # the backward pass runs on the device too
    torch.testing.assert_close(cuda_logits.cpu(), logits)
