"""Model registry: training config -> plain-dict model config -> nn.Module.

The dict from `model_config_for` is what a checkpoint stores, so `build_model(ckpt["model_config"])`
rebuilds the network without the training config or any pickled code. `build_model` checks the dict
strictly (unknown type, missing or extra keys, bad values) because checkpoints come from outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from models.char_lstm import CharLSTM
from models.config import PalindromeConfig, TextConfig
from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM
from models.rnn import RNN

MODEL_TYPES = ("rnn", "lstm", "phased_lstm", "char_lstm")
NUM_DIGITS = 10  # palindrome classes, and the width of a one-hot digit

# The keys each type's config must have besides "type" (and no others); _arguments checks their values.
_PALINDROME_KEYS = ("input_size", "hidden_size", "num_classes")
_TEXT_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_layers", "dropout")


def model_config_for(config: PalindromeConfig | TextConfig, vocab_size: int | None = None) -> dict[str, Any]:
    """The model config dict for a training config; text needs the vocabulary size."""
    if isinstance(config, PalindromeConfig):
        return {
            "type": config.model,
            "input_size": NUM_DIGITS if config.input_encoding == "one_hot" else 1,
            "hidden_size": config.hidden_size,
            "num_classes": NUM_DIGITS,
        }
    if isinstance(config, TextConfig):
        if vocab_size is None:
            raise ValueError("a text model config needs vocab_size")
        return {
            "type": config.model,
            "vocab_size": vocab_size,
            "embedding_size": config.embedding_size,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "dropout": config.dropout,
        }
    raise ValueError(f"expected a PalindromeConfig or TextConfig, got {type(config).__name__}")


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised model for a config dict from `model_config_for`."""
    if not isinstance(model_config, Mapping):
        raise ValueError(f"model config must be a dict, got {type(model_config).__name__}")
    if "type" not in model_config:
        raise ValueError(f"model config has no 'type'; expected one of {', '.join(MODEL_TYPES)}")
    model_type = model_config["type"]
    if model_type == "rnn":
        return RNN(**_arguments(model_config, _PALINDROME_KEYS))
    elif model_type == "lstm":
        return LSTM(**_arguments(model_config, _PALINDROME_KEYS))
    elif model_type == "phased_lstm":
        return PhasedLSTM(**_arguments(model_config, _PALINDROME_KEYS))
    elif model_type == "char_lstm":
        return CharLSTM(**_arguments(model_config, _TEXT_KEYS))
    raise ValueError(f"model type {model_type!r} is not recognized; expected one of {', '.join(MODEL_TYPES)}")


def _arguments(model_config: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The constructor arguments in `model_config`, after checking every key is present and valid."""
    model_type = model_config["type"]
    missing = [k for k in keys if k not in model_config]
    if missing:
        raise ValueError(f"model config for {model_type!r} is missing {', '.join(map(repr, missing))}")
    extra = sorted(set(model_config) - set(keys) - {"type"})
    if extra:
        raise ValueError(f"model config for {model_type!r} has unexpected {', '.join(map(repr, extra))}")
    kwargs = {k: model_config[k] for k in keys}
    for key, value in kwargs.items():
        if key == "dropout":
            # bool is an int subclass; True is not a dropout probability.
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"model config {key!r} must be a number in [0, 1), got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model config {key!r} must be a positive integer, got {value!r}")
    return kwargs
