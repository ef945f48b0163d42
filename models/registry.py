"""Model registry: training config -> architecture (a plain dict) -> nn.Module.

The architecture dict from `architecture_for` is what a checkpoint stores, so
`build_model(ckpt["architecture"])` rebuilds the network without the training config or any pickled
code. `build_model` checks the dict strictly (unknown type, missing or extra keys, bad values)
because checkpoints come from outside.

The initialisation (`init`, models/init.py) is not part of the architecture: it shapes no
parameter and matters only before the first step, so a checkpoint's weights load whatever it was.
The training config holds it (and so does every checkpoint's `train_config`);
`build_model(architecture, **initialisation_for(config))` builds a run's starting weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models.char_lstm import CharLSTM
from models.config import PalindromeConfig, TextConfig
from models.lstm import LSTM
from models.phased_lstm import PhasedLSTM
from models.rnn import RNN

MODEL_TYPES = ("rnn", "lstm", "phased_lstm", "char_lstm")
_MODEL_CLASSES = (RNN, LSTM, PhasedLSTM, CharLSTM)  # what build_model returns, one class per type
NUM_DIGITS = 10  # palindrome classes, and the width of a one-hot digit

# The keys each type's architecture must have besides "type" (and no others); _arguments checks their values.
_PALINDROME_KEYS = ("input_size", "hidden_size", "num_classes")
_TEXT_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_layers", "dropout")


def architecture_for(config: PalindromeConfig | TextConfig, vocab_size: int | None = None) -> dict[str, Any]:
    """The architecture dict for a training config; text needs the vocabulary size."""
    if isinstance(config, PalindromeConfig):
        return {
            "type": config.model,
            "input_size": NUM_DIGITS if config.input_encoding == "one_hot" else 1,
            "hidden_size": config.hidden_size,
            "num_classes": NUM_DIGITS,
        }
    if isinstance(config, TextConfig):
        if vocab_size is None:
            raise ValueError("a text architecture needs vocab_size")
        return {
            "type": config.model,
            "vocab_size": vocab_size,
            "embedding_size": config.embedding_size,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "dropout": config.dropout,
        }
    raise ValueError(f"expected a PalindromeConfig or TextConfig, got {type(config).__name__}")


def initialisation_for(config: PalindromeConfig | TextConfig) -> dict[str, Any]:
    """`build_model`'s init arguments for a config: the scheme and chrono's T_max.

    T_max defaults to the longest dependency the task trains on: the input length (palindromes,
    the target length even under a curriculum) or seq_length (text).
    """
    default_t_max = config.input_length if isinstance(config, PalindromeConfig) else config.seq_length
    t_max = config.chrono_t_max if config.chrono_t_max is not None else default_t_max
    return {"init": config.init, "chrono_t_max": t_max}


def build_model(
    architecture: Mapping[str, Any], *, init: str = "default", chrono_t_max: int | None = None
) -> nn.Module:
    """A freshly initialised model for an architecture dict from `architecture_for`.

    `init` (models/init.py) must be one the model type accepts; chrono needs `chrono_t_max`.
    """
    if not isinstance(architecture, Mapping):
        raise ValueError(f"architecture must be a dict, got {type(architecture).__name__}")
    if "type" not in architecture:
        raise ValueError(f"architecture has no 'type'; expected one of {', '.join(MODEL_TYPES)}")
    model_type = architecture["type"]
    if model_type == "rnn":
        return RNN(**_arguments(architecture, _PALINDROME_KEYS), init=init)
    elif model_type == "lstm":
        return LSTM(**_arguments(architecture, _PALINDROME_KEYS), init=init, chrono_t_max=chrono_t_max)
    elif model_type == "phased_lstm":
        return PhasedLSTM(**_arguments(architecture, _PALINDROME_KEYS), init=init, chrono_t_max=chrono_t_max)
    elif model_type == "char_lstm":
        return CharLSTM(**_arguments(architecture, _TEXT_KEYS), init=init, chrono_t_max=chrono_t_max)
    raise ValueError(f"model type {model_type!r} is not recognized; expected one of {', '.join(MODEL_TYPES)}")


def architecture_mismatch(model: nn.Module, architecture: Mapping[str, Any]) -> str | None:
    """Why `model` is not a model of `architecture` (from `architecture_for`), or None.

    A model of one of the registry's own classes must have exactly the parameters
    `build_model(architecture)` has, so its checkpoints load wherever the architecture is read. Any
    other module (a benchmark's stand-in, e.g. nn.LSTM in the palindrome ablation) must at least read
    the architecture's inputs and return its logits and state widths; its checkpoints then load only
    into its own class.
    """
    if type(model) in _MODEL_CLASSES:
        # The meta device allocates nothing and draws no random numbers: the global RNG, which seeds
        # the run's dropout masks, is left as it was.
        with torch.device("meta"):
            reference = build_model(architecture)
        if type(model) is not type(reference):
            return f"its class is {type(model).__name__}, the architecture's is {type(reference).__name__}"
        shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
        diffs = [
            f"{name}: {shapes.get(name)} in the model, {expected.get(name)} expected"
            for name in sorted(set(shapes) | set(expected))
            if shapes.get(name) != expected.get(name)
        ]
        return f"its parameters differ ({'; '.join(diffs)})" if diffs else None
    return _interface_mismatch(model, architecture)


def _interface_mismatch(model: nn.Module, architecture: Mapping[str, Any]) -> str | None:
    """Run a batch of 2 sequences of 3 steps through `model`; check the logits and state widths."""
    B, T = 2, 3
    device = next(model.parameters(), torch.empty(0)).device
    if architecture["type"] == "char_lstm":
        inputs = torch.zeros(B, T, dtype=torch.long, device=device)  # (B, T) character ids
        outputs = architecture["vocab_size"]
    else:
        inputs = torch.zeros(B, T, architecture["input_size"], device=device)  # (B, T, D)
        outputs = architecture["num_classes"]
    was_training = model.training
    model.eval()  # no dropout, so the probe draws no random numbers
    try:
        with torch.no_grad():
            logits, state = model(inputs)
    # Whatever a foreign module raises on inputs of the wrong shape means one thing here.
    except Exception as e:
        return f"it cannot read the architecture's inputs {tuple(inputs.shape)}: {e}"
    finally:
        model.train(was_training)
    if tuple(logits.shape) != (B, T, outputs):
        return f"its logits are {tuple(logits.shape)}, the architecture's are {(B, T, outputs)}"
    hidden_size = architecture["hidden_size"]
    widths = [t.shape[-1] for t in (state if isinstance(state, tuple | list) else [state])]
    if any(width != hidden_size for width in widths):
        return f"its state has widths {widths}, the architecture's hidden_size is {hidden_size}"
    return None


def _arguments(architecture: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The constructor arguments in `architecture`, after checking every key is present and valid."""
    model_type = architecture["type"]
    missing = [k for k in keys if k not in architecture]
    if missing:
        raise ValueError(f"architecture for {model_type!r} is missing {', '.join(map(repr, missing))}")
    extra = sorted(set(architecture) - set(keys) - {"type"})
    if extra:
        raise ValueError(f"architecture for {model_type!r} has unexpected {', '.join(map(repr, extra))}")
    kwargs = {k: architecture[k] for k in keys}
    for key, value in kwargs.items():
        if key == "dropout":
            # bool is an int subclass; True is not a dropout probability.
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"architecture {key!r} must be a number in [0, 1), got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"architecture {key!r} must be a positive integer, got {value!r}")
    return kwargs
