"""The training-memory estimate against the real models: parameters exactly, activations within 3x."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.config import PalindromeConfig, TextConfig
from models.memory import (
    FLOAT_BYTES,
    NUM_DIGITS,
    activation_floats,
    estimate_training_bytes,
    estimate_training_memory,
    parameter_count,
)
from models.registry import NUM_DIGITS as REGISTRY_DIGITS
from models.registry import architecture_for, build_model

VOCAB = 67
PALINDROMES = [
    PalindromeConfig(model=m, input_encoding=e, hidden_size=24, input_length=12, batch_size=32)
    for m in ("rnn", "lstm", "phased_lstm")
    for e in ("one_hot", "scalar")
]
TEXTS = [
    TextConfig(num_layers=n, hidden_size=48, embedding_size=16, seq_length=40, batch_size=16) for n in (1, 3)
]


def test_digit_count_matches_the_registry() -> None:
    assert NUM_DIGITS == REGISTRY_DIGITS


@pytest.mark.parametrize("config", PALINDROMES + TEXTS, ids=lambda c: f"{c.model}")
def test_parameter_count_is_exact(config: PalindromeConfig | TextConfig) -> None:
    vocab = VOCAB if isinstance(config, TextConfig) else None
    model = build_model(architecture_for(config, vocab))
    assert parameter_count(config, vocab) == sum(p.numel() for p in model.parameters())


def saved_for_backward_bytes(config: PalindromeConfig | TextConfig) -> int:
    """Bytes autograd really keeps for one training batch's backward pass (distinct storages)."""
    torch.manual_seed(0)
    B = config.batch_size
    if isinstance(config, TextConfig):
        model = build_model(architecture_for(config, VOCAB))
        inputs = torch.randint(VOCAB, (B, config.seq_length))
        targets = torch.randint(VOCAB, (B, config.seq_length))
    else:
        model = build_model(architecture_for(config))
        width = NUM_DIGITS if config.input_encoding == "one_hot" else 1
        inputs = torch.rand(B, config.input_length, width)
        targets = torch.randint(NUM_DIGITS, (B,))
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits, _ = model(inputs)
        if isinstance(config, TextConfig):
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        else:
            loss = F.cross_entropy(logits[:, -1], targets)
    loss.backward()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in parameters)


@pytest.mark.parametrize("config", PALINDROMES[::2] + TEXTS, ids=lambda c: f"{c.model}")
def test_activation_estimate_is_the_right_order_of_magnitude(config: PalindromeConfig | TextConfig) -> None:
    vocab = VOCAB if isinstance(config, TextConfig) else None
    measured = saved_for_backward_bytes(config)
    estimated = activation_floats(config, vocab) * FLOAT_BYTES
    assert measured / 3 <= estimated <= measured * 3, (estimated, measured)


def test_the_total_adds_weights_gradients_and_optimizer_state() -> None:
    config = TEXTS[1]
    parts = estimate_training_memory(config, VOCAB)
    params = parameter_count(config, VOCAB) * FLOAT_BYTES
    assert parts.parameters == parts.gradients == params and parts.optimizer == params  # rmsprop: 1 buffer
    adam = estimate_training_memory(config.model_copy(update={"optimizer": "adam"}), VOCAB)
    assert adam.optimizer == 2 * params
    assert estimate_training_bytes(config, VOCAB) == parts.total
    # Doubling the batch doubles the activations and nothing else.
    doubled = estimate_training_memory(config.model_copy(update={"batch_size": 32}), VOCAB)
    assert doubled.activations == 2 * parts.activations and doubled.parameters == parts.parameters
