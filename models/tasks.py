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
from models.curriculum import Curriculum
from models.data import PalindromeData, TextData, Vocabulary
from models.registry import architecture_for
from models.sample import generate
from models.streams import TrainStreams

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

    def observe(self, correct: torch.Tensor, examples: int) -> None:  # noqa: B027 (a hook, no-op by default)
        """Called after every training step with its correct predictions (on the device) and their number."""

    def training_metrics(self) -> dict[str, float]:
        """Metrics of the task's own to record beside the training ones."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """The task's own training state (a curriculum's), stored in checkpoints as `task_state`."""
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:  # noqa: B027 (a hook)
        """Continue from a checkpoint's `task_state` (None: the checkpoint had none)."""

    def train_state(self, device: torch.device) -> Any:
        """The recurrent state the next training batch starts from; None: zeros."""
        return None

    def keep_train_state(self, state: Any) -> None:  # noqa: B027 (a hook, no-op by default)
        """The (detached) state the latest training batch ended in."""

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
        self.curriculum = (
            None
            if config.curriculum_start is None
            else Curriculum(
                config.curriculum_start,
                config.input_length,
                config.curriculum_step,
                config.curriculum_threshold,
                config.curriculum_window,
            )
        )
        self.batch_length = config.input_length  # the length of the latest training batch

    def train_batch(self, generator: torch.Generator, device: torch.device) -> Batch:
        # Evaluation is not affected: eval_batches is always the held-out set at input_length.
        self.batch_length = self.config.input_length if self.curriculum is None else self.curriculum.length
        return self.data.train_batch(self.config.batch_size, generator, device, self.batch_length)

    def observe(self, correct: torch.Tensor, examples: int) -> None:
        if self.curriculum is not None:
            self.curriculum.observe(correct, examples)

    def training_metrics(self) -> dict[str, float]:
        # train_length: the length the latest step trained at, so the curves show the curriculum.
        return {} if self.curriculum is None else {"train_length": float(self.batch_length)}

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.curriculum is None else {"curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        # A checkpoint without a curriculum (or a run resumed without one) starts where the config says.
        if self.curriculum is not None and state is not None and "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])

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
        self.streams = (
            TrainStreams(self.data.train_ids, config.batch_size, config.seq_length)
            if config.carry_state
            else None
        )

    def train_batch(self, generator: torch.Generator, device: torch.device) -> Batch:
        if self.streams is not None:
            return self.streams.next_batch(device)
        # Fresh random windows every step, each from a zero state: the windows are unrelated text,
        # so a state carried over from the previous batch would be noise, not context.
        return self.data.train_batch(self.config.batch_size, self.config.seq_length, generator, device)

    def train_state(self, device: torch.device) -> Any:
        return None if self.streams is None else self.streams.state_on(device)

    def keep_train_state(self, state: Any) -> None:
        if self.streams is not None:
            self.streams.state = state

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.streams is None else {"streams": self.streams.state_dict()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.streams is not None and state is not None and "streams" in state:
            self.streams.load_state_dict(state["streams"])

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
