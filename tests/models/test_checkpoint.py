"""Checkpoints: plain dicts that survive bytes and weights_only loading; anything else is refused."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from models.checkpoint import (
    CHECKPOINT_KEYS,
    CheckpointError,
    from_bytes,
    load,
    load_model,
    load_vocabulary,
    save,
    to_bytes,
)
from models.data import Vocabulary


def _equal(a: object, b: object) -> bool:
    """Deep equality for checkpoint contents (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return a == b


@pytest.mark.parametrize("run", ["text_run", "palindrome_run"])
def test_round_trip_through_bytes_with_weights_only(run: str, request: pytest.FixtureRequest) -> None:
    ckpt = request.getfixturevalue(run).final_checkpoint
    data = to_bytes(ckpt)
    # Plain torch.load with weights_only=True must accept it: nothing in it needs unpickling code.
    raw = torch.load(io.BytesIO(data), weights_only=True)
    assert _equal(raw, ckpt)
    loaded = from_bytes(data)
    assert tuple(loaded) == CHECKPOINT_KEYS
    assert _equal(loaded, ckpt)


def test_load_model_reproduces_the_trained_outputs(text_run) -> None:
    ckpt = from_bytes(to_bytes(text_run.final_checkpoint))
    model = load_model(ckpt)
    assert not model.training
    vocab = load_vocabulary(ckpt)
    assert isinstance(vocab, Vocabulary) and list(vocab.chars) == ckpt["vocab"]

    reference = load_model(text_run.final_checkpoint)
    inputs = vocab.encode("Once upon a time there was")[None]
    with torch.no_grad():
        assert torch.equal(model(inputs)[0], reference(inputs)[0])


def test_palindrome_checkpoint_has_no_vocabulary(palindrome_run) -> None:
    ckpt = palindrome_run.final_checkpoint
    assert ckpt["vocab"] is None and load_vocabulary(ckpt) is None
    assert ckpt["task"] == "palindrome" and ckpt["train_config"]["input_length"] == 5


def test_save_and_load_a_file(tmp_path: Path, palindrome_run) -> None:
    path = tmp_path / "model.pt"
    save(palindrome_run.final_checkpoint, path)
    save(palindrome_run.final_checkpoint, path)  # overwrites in place
    assert _equal(load(path), palindrome_run.final_checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


class NotAllowed:
    pass


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not a checkpoint",
        pickle.dumps(NotAllowed(), protocol=2),
        to_bytes({"format": 1}),
        to_bytes([1, 2, 3]),
    ],
    ids=["empty", "garbage", "pickled object", "missing keys", "not a dict"],
)
def test_unreadable_bytes_raise_checkpoint_error(data: bytes) -> None:
    with pytest.raises(CheckpointError):
        from_bytes(data)


def test_a_pickled_module_is_refused_not_executed() -> None:
    buffer = io.BytesIO()
    torch.save({"model": torch.nn.Linear(2, 2)}, buffer)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        from_bytes(buffer.getvalue())


def test_wrong_format_and_mismatched_weights(palindrome_run) -> None:
    ckpt = palindrome_run.final_checkpoint
    with pytest.raises(CheckpointError, match="format 4 is not supported"):
        from_bytes(to_bytes({**ckpt, "format": 4}))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_model({**ckpt, "architecture": {**ckpt["architecture"], "hidden_size": 8}})
    with pytest.raises(CheckpointError, match="model type 'gru' is not recognized"):
        load_model({**ckpt, "architecture": {**ckpt["architecture"], "type": "gru"}})
