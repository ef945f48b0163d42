"""Fixtures for tests/models: the Grimm excerpt in tests/data, tiny CPU configs and a recording callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from models.callbacks import TrainingCallbacks
from models.char_lstm import CharLSTM
from models.checkpoint import load_model, load_vocabulary
from models.config import PalindromeConfig, TextConfig
from models.corpus import load_corpus
from models.data import Vocabulary, make_data
from models.train import TrainResult, train
from tests.data import GRIMMS_EXCERPT


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Tiny models on a shared machine: one thread is as fast and does not starve other jobs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def grimms() -> str:
    """The Grimms' Fairy Tales excerpt (~55k characters) without the Project Gutenberg header and licence."""
    return load_corpus(GRIMMS_EXCERPT, strip_gutenberg=True)


@pytest.fixture(scope="session")
def small_text(grimms: str) -> str:
    return grimms[:50_000]


def palindrome_config(**overrides: Any) -> PalindromeConfig:
    """A palindrome config that trains in about a second on one CPU thread."""
    values: dict[str, Any] = dict(
        input_length=5,
        hidden_size=32,
        batch_size=64,
        optimizer="adam",
        learning_rate=1e-2,
        train_steps=20,
        log_every=5,
        eval_every=10,
        checkpoint_every=1000,
        device="cpu",
    )
    return PalindromeConfig(**{**values, **overrides})


def text_config(**overrides: Any) -> TextConfig:
    """A one-layer char_lstm config small enough for a few dozen steps per test."""
    values: dict[str, Any] = dict(
        hidden_size=32,
        num_layers=1,
        embedding_size=16,
        seq_length=20,
        batch_size=16,
        optimizer="adam",
        learning_rate=1e-2,
        train_steps=20,
        log_every=5,
        eval_every=10,
        checkpoint_every=1000,
        sample_every=1000,
        sample_length=30,
        device="cpu",
    )
    return TextConfig(**{**values, **overrides})


@pytest.fixture
def make_palindrome_config() -> Callable[..., PalindromeConfig]:
    return palindrome_config


@pytest.fixture
def make_text_config() -> Callable[..., TextConfig]:
    return text_config


class Recorder(TrainingCallbacks):
    """Keeps everything the loop reports; after `stop_after` steps of this run, should_stop() answers True."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.steps: list[int] = []
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, dict[str, Any], bool, bool]] = []
        self.samples: list[tuple[int, float, str]] = []

    def on_step(self, step: int) -> None:
        self.steps.append(step)

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics.append((step, dict(metrics)))

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        self.checkpoints.append((step, checkpoint, is_best, is_final))

    def on_sample(self, step: int, temperature: float, text: str) -> None:
        self.samples.append((step, temperature, text))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.steps) >= self.stop_after


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_recorder() -> type[Recorder]:
    return Recorder


@pytest.fixture(scope="session")
def text_run(small_text: str) -> TrainResult:
    """A tiny char_lstm trained long enough that its samples are not uniform noise."""
    config = text_config(train_steps=60, eval_every=60)
    return train(config, make_data(config, small_text))


@pytest.fixture(scope="session")
def palindrome_run() -> TrainResult:
    """An LSTM that solves palindromes of length 5+1 (100% held-out accuracy)."""
    config = palindrome_config(hidden_size=64, batch_size=128, train_steps=150, eval_every=150)
    return train(config, make_data(config))


# Short enough to live here (tests read nothing outside the repository), repetitive enough that a
# few dozen steps give the model preferences, so distributions are not flat.
TALE = (
    "Once upon a time there lived a king and a queen who had no children. The king said to the queen: "
    "we shall have a child, and the queen said to the king: that would be a fine thing. Then one day "
    "a frog crept out of the water and said to the queen: your wish shall be fulfilled. "
) * 6


@pytest.fixture(scope="session")
def tale_lm() -> tuple[CharLSTM, Vocabulary]:
    """A two-layer CharLSTM trained for a few dozen steps on TALE (its greedy text falls into a loop)."""
    config = text_config(num_layers=2, train_steps=40, log_every=20, eval_every=40)
    result = train(config, make_data(config, TALE))
    model, vocab = load_model(result.final_checkpoint), load_vocabulary(result.final_checkpoint)
    assert isinstance(model, CharLSTM) and vocab is not None
    return model, vocab
