"""The two tasks as the training loop sees them: batches, scoring, evaluation and samples.

`models.train.train` runs the same loop for both; everything that differs between a palindrome and a
text run is here, behind the `Task` interface, and `make_task` picks the task for a config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from models.checkpoint import CheckpointError
from models.config import PalindromeConfig, TextConfig
from models.data import PalindromeData, TextData, Vocabulary
from models.registry import architecture_for
from models.sample import generate

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets) on the training device


class Task(ABC):
    """What the loop needs to know about a task besides the shared config fields."""

    architecture: dict[str, Any]  # the model to train (see models.registry)
    vocab: Vocabulary | None  # stored in checkpoints; None for palindromes
    last_step_only: bool  # score the logits after the last input step only, else every step
    carries_eval_state: bool  # each evaluation batch continues the one before it
    chars_per_step: int | None  # characters per training step, for the chars_per_s metric

    @abstractmethod
    def train_batch(self, generator: torch.Generator, device: torch.device) -> Batch:
        """The next training batch, drawn from `generator` (whose state checkpoints keep)."""

    @abstractmethod
    def eval_batches(self, device: torch.device) -> Iterator[Batch]:
        """The held-out data, the same at every evaluation."""

    def samples_due(self, step: int) -> bool:
        """Whether `samples` has anything to say after `step`."""
        return False

    def samples(self, model: nn.Module, step: int) -> list[tuple[float, str]]:
        """Training-time samples (temperature, text) of the model after `step`."""
        return []


class PalindromeTask(Task):
    """Predict the last digit of a palindrome from the digits before it."""

    vocab = None
    last_step_only = True  # one target per sequence: the digit after the last input
    carries_eval_state = False  # held-out palindromes are unrelated to each other
    chars_per_step = None

    def __init__(self, config: PalindromeConfig, data: PalindromeData) -> None:
        if (data.input_length, data.encoding) != (config.input_length, config.input_encoding):
            raise ValueError(
                f"data has input_length={data.input_length}, encoding={data.encoding!r} but the config "
                f"asks for input_length={config.input_length}, input_encoding={config.input_encoding!r}"
            )
        self.config = config
        self.data = data
        self.architecture = architecture_for(config)

    def train_batch(self, generator: torch.Generator, device: torch.device) -> Batch:
        return self.data.train_batch(self.config.batch_size, generator, device)

    def eval_batches(self, device: torch.device) -> Iterator[Batch]:
        return self.data.eval_batches(device)


class TextTask(Task):
    """Predict every next character of windows of a corpus."""

    last_step_only = False  # every next-character prediction is scored
    # The validation split is read as contiguous streams, each batch continuing the one before
    # (see TextData.val_batches), so the state carries over as it does when the model generates.
    carries_eval_state = True

    def __init__(self, config: TextConfig, data: TextData, vocab: Vocabulary) -> None:
        self.config = config
        self.vocab: Vocabulary = vocab
        self.data = data.with_vocab(vocab)
        self.data.check_seq_length(config.seq_length)
        self.architecture = architecture_for(config, len(vocab))
        self.chars_per_step = config.batch_size * config.seq_length

    def train_batch(self, generator: torch.Generator, device: torch.device) -> Batch:
        # Fresh random windows every step, each from a zero state: the windows are unrelated text,
        # so a state carried over from the previous batch would be noise, not context.
        return self.data.train_batch(self.config.batch_size, self.config.seq_length, generator, device)

    def eval_batches(self, device: torch.device) -> Iterator[Batch]:
        return self.data.val_batches(self.config.seq_length, device)

    def samples_due(self, step: int) -> bool:
        return step % self.config.sample_every == 0

    def samples(self, model: nn.Module, step: int) -> list[tuple[float, str]]:
        """A greedy and a temperature sample of `sample_length` characters from the same random start.

        Their generators are seeded from (config.seed, step) so they never touch the training RNG
        streams: sampling does not change the run.
        """
        random_seed = (self.config.seed << 32) + step
        generator = torch.Generator().manual_seed(random_seed)
        start = self.vocab.chars[int(torch.randint(len(self.vocab), (1,), generator=generator))]
        samples = []
        for temperature in (0.0, self.config.sample_temperature):
            continuation = generate(
                model, self.vocab, start, self.config.sample_length - 1, temperature, random_seed=random_seed
            )
            samples.append((temperature, start + continuation.text))
        return samples


def make_task(
    config: PalindromeConfig | TextConfig,
    data: PalindromeData | TextData,
    resume: dict[str, Any] | None = None,
) -> Task:
    """The task of `config` on `data`; a text run resumed from checkpoint `resume` keeps its vocabulary."""
    if isinstance(config, TextConfig):
        if not isinstance(data, TextData):
            raise ValueError(f"a text config needs TextData, got {type(data).__name__}")
        # A resumed model's embedding rows follow the checkpoint's vocabulary, not the new corpus's.
        vocab = data.vocab if resume is None else _resume_vocabulary(resume, data)
        return TextTask(config, data, vocab)
    if not isinstance(data, PalindromeData):
        raise ValueError(f"a palindrome config needs PalindromeData, got {type(data).__name__}")
    return PalindromeTask(config, data)


def _resume_vocabulary(ckpt: dict[str, Any], data: TextData) -> Vocabulary:
    if not ckpt["vocab"]:
        raise CheckpointError("the checkpoint has no vocabulary: it is not from a text run")
    vocab = Vocabulary(ckpt["vocab"])
    missing = vocab.missing(data.text)
    if missing:
        shown = ", ".join(repr(c) for c in missing[:20])
        raise CheckpointError(
            f"the checkpoint's vocabulary does not cover the corpus: {len(missing)} characters are "
            f"missing ({shown}); resume on text written in the same characters"
        )
    return vocab
