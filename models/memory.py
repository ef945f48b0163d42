"""How much memory a training run needs at its peak, from its config alone (no tensor is allocated).

The API asks this before it queues a job, so a config that cannot fit the worker is refused at once
with the fields to shrink, instead of failing (or swapping a machine to a halt) inside a worker.

Peak = weights + gradients + optimizer state + what autograd keeps for the backward pass:
- weights and gradients: one float32 copy each of every parameter (counted exactly);
- optimizer state: RMSprop keeps a running square average, Adam two moments, SGD one momentum buffer;
- activations: per time step and batch row, the LSTM keeps its gate activations (4H), c(t), tanh(c(t))
  and h(t) (about 8H floats; the plain RNN about 2H), the input row, and for text the
  vocabulary-sized logits with their softmax for the loss (about 3V floats per character).
This is an order-of-magnitude estimate meant for admission, not an allocator's exact figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.config import PalindromeConfig, TextConfig

# models.registry.NUM_DIGITS, restated: importing the registry imports torch, and the API asks for
# this estimate on a path that needs no torch. tests/models/test_memory.py checks the two agree.
NUM_DIGITS = 10

FLOAT_BYTES = 4  # float32 everywhere in training
# Floats autograd keeps per (batch row, time step, hidden unit) for one layer of each cell type.
SAVED_PER_HIDDEN_UNIT = {"rnn": 2, "lstm": 8, "phased_lstm": 10, "char_lstm": 8}
# Optimizer state per parameter, in parameter-sized buffers.
OPTIMIZER_BUFFERS = {"rmsprop": 1, "adam": 2, "sgd": 1}
# Floats per (batch row, time step, vocabulary entry) for the text loss: logits, softmax, their gradient.
LOGIT_COPIES = 3


@dataclass(frozen=True)
class TrainingMemory:
    """The parts of the estimate, in bytes; `total` is the peak."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations


def parameter_count(config: PalindromeConfig | TextConfig, vocab_size: int | None = None) -> int:
    """The exact number of trainable parameters of the model `models.registry.build_model` makes."""
    H = config.hidden_size
    if isinstance(config, TextConfig):
        if vocab_size is None:
            raise ValueError("a text model needs vocab_size")
        V, E, L = vocab_size, config.embedding_size, config.num_layers
        # nn.LSTM: W_ih (4H, in), W_hh (4H, H) and two biases (4H) per layer; the first layer reads E.
        lstm = 4 * H * (E + H + 2) + (L - 1) * 4 * H * (H + H + 2)
        return V * E + lstm + V * H + V  # embedding, LSTM, linear head
    D = NUM_DIGITS if config.input_encoding == "one_hot" else 1
    head = NUM_DIGITS * H + NUM_DIGITS
    if config.model == "rnn":
        return H * D + H * H + H + head
    lstm = 4 * H * D + 4 * H * H + 4 * H + head
    if config.model == "phased_lstm":
        return lstm + 3 * H  # tau, shift and r_on per unit
    return lstm


def activation_floats(config: PalindromeConfig | TextConfig, vocab_size: int | None = None) -> int:
    """Floats autograd keeps for one training step's backward pass."""
    B, H = config.batch_size, config.hidden_size
    per_unit = SAVED_PER_HIDDEN_UNIT[config.model]
    if isinstance(config, TextConfig):
        if vocab_size is None:
            raise ValueError("a text model needs vocab_size")
        tokens = B * config.seq_length
        return tokens * (config.embedding_size + config.num_layers * per_unit * H + LOGIT_COPIES * vocab_size)
    D = NUM_DIGITS if config.input_encoding == "one_hot" else 1
    return B * config.input_length * (D + per_unit * H)


def estimate_training_memory(
    config: PalindromeConfig | TextConfig, vocab_size: int | None = None
) -> TrainingMemory:
    """The peak memory of one training step of `config` (text needs the vocabulary size)."""
    params = parameter_count(config, vocab_size) * FLOAT_BYTES
    return TrainingMemory(
        parameters=params,
        gradients=params,
        optimizer=OPTIMIZER_BUFFERS[config.optimizer] * params,
        activations=activation_floats(config, vocab_size) * FLOAT_BYTES,
    )


def estimate_training_bytes(config: PalindromeConfig | TextConfig, vocab_size: int | None = None) -> int:
    """Peak training bytes of `config`: see the module docstring for what is counted."""
    return estimate_training_memory(config, vocab_size).total


def fields_to_shrink(config: PalindromeConfig | TextConfig) -> tuple[str, ...]:
    """The config fields the estimate grows with, largest effect first."""
    if isinstance(config, TextConfig):
        return ("batch_size", "seq_length", "hidden_size", "num_layers", "embedding_size")
    return ("batch_size", "input_length", "hidden_size")
