"""The training loop: `train(config, data, callbacks) -> TrainResult`, the same for both tasks.

The tasks differ only in data and loss: a palindrome is scored on the prediction after the last
input digit, text on every next-character prediction. Everything that leaves the loop (metrics,
checkpoints, samples) goes through `TrainingCallbacks`, and `should_stop()` cancels it
cooperatively, so the loop runs unchanged in tests, the benchmark, the CLI and the worker.

Resuming: a checkpoint holds the model, optimizer and scheduler state, the data generator's state
and torch's RNG state, so on CPU `train` for 2N steps and `train` for N, checkpoint, `train(...,
resume=ckpt)` for N more give bitwise-identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.callbacks import TrainingCallbacks
from models.checkpoint import FORMAT_VERSION, CheckpointError, check_checkpoint, resume_mismatch
from models.config import PalindromeConfig, TextConfig
from models.data import PalindromeData, TextData, Vocabulary
from models.registry import build_model, model_config_for
from models.sample import generate

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainResult:
    step: int  # optimizer steps done in total (a resumed run counts the checkpoint's steps too)
    stopped: bool  # True when should_stop() ended the run before train_steps
    final_checkpoint: dict[str, Any]
    best_val_loss: float | None
    metrics: dict[str, float]  # the latest value of every training and validation metric


def resolve_device(device: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; asking for CUDA without it is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return torch.device(device)


def make_optimizer(
    config: PalindromeConfig | TextConfig, params: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.learning_rate)
    elif config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate)
    elif config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum)
    raise ValueError(f"optimizer {config.optimizer!r} is not recognized; expected rmsprop, adam or sgd")


def train(
    config: PalindromeConfig | TextConfig,
    data: PalindromeData | TextData,
    callbacks: TrainingCallbacks | None = None,
    *,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train from scratch, or from `resume` (a checkpoint dict) on to `config.train_steps`."""
    callbacks = callbacks if callbacks is not None else TrainingCallbacks()
    is_text = isinstance(config, TextConfig)
    _check_data(config, data)
    device = resolve_device(config.device)

    vocab: Vocabulary | None = None
    if is_text:
        # A resumed model's embedding rows follow the checkpoint's vocabulary, not the new corpus's.
        vocab = data.vocab if resume is None else _resume_vocabulary(resume, data)
        data = data.with_vocab(vocab)
        data.check_seq_length(config.seq_length)
    model_config = model_config_for(config, len(vocab) if vocab is not None else None)
    if resume is not None:
        _check_resumable(resume, config, model_config)

    torch.manual_seed(config.seed)  # initial weights and dropout masks
    model = build_model(model_config).to(device)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
    )
    generator = torch.Generator().manual_seed(config.seed)  # the training batches
    step, best_val_loss, metrics = 0, None, {}
    if resume is not None:
        try:
            model.load_state_dict(resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            _set_rng_state(resume["rng"], generator, device)
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot resume from this checkpoint: {e}") from e
        step, best_val_loss, metrics = resume["step"], resume["best_val_loss"], dict(resume["metrics"])

    if is_text:

        def next_batch() -> Batch:
            # Fresh random windows every step, each from a zero state: the windows are unrelated
            # text, so a state carried over from the previous batch would be noise, not context.
            return data.train_batch(config.batch_size, config.seq_length, generator, device)

        def eval_batches() -> Iterator[Batch]:
            return data.val_batches(config.seq_length, device)

        chars_per_step = config.batch_size * config.seq_length
    else:

        def next_batch() -> Batch:
            return data.train_batch(config.batch_size, generator, device)

        def eval_batches() -> Iterator[Batch]:
            return data.eval_batches(device)

        chars_per_step = None
    last_step_only = not is_text

    clock = _Stopwatch(device)
    meter = _Meter(device)
    last_eval_step: int | None = None

    def record(values: dict[str, float]) -> None:
        metrics.update(values)
        callbacks.on_metrics(step, values)

    def record_training() -> None:
        record(meter.summary(clock.lap(), config.batch_size, chars_per_step))

    def evaluate() -> None:
        nonlocal best_val_loss, last_eval_step
        values = _evaluate(model, eval_batches(), last_step_only, carry_state=is_text)
        last_eval_step = step
        if math.isfinite(values["val_loss"]) and (
            best_val_loss is None or values["val_loss"] < best_val_loss
        ):
            best_val_loss = values["val_loss"]
        record(values)

    def checkpoint(*, is_final: bool) -> dict[str, Any]:
        if last_eval_step != step:
            evaluate()
        # The best checkpoint is the one whose own validation loss is the lowest seen in the run.
        is_best = best_val_loss is not None and metrics["val_loss"] <= best_val_loss
        # CPU copies, not references to the live tensors: a caller may keep a checkpoint while
        # training goes on in place.
        ckpt = {
            "format": FORMAT_VERSION,
            "task": config.task,
            "model_config": dict(model_config),
            "train_config": config.model_dump(mode="json"),
            "vocab": list(vocab.chars) if vocab is not None else None,
            "step": step,
            "model": _cpu_copy(model.state_dict()),
            "optimizer": _cpu_copy(optimizer.state_dict()),
            "scheduler": copy.deepcopy(scheduler.state_dict()),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": generator.get_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "best_val_loss": best_val_loss,
            "metrics": dict(metrics),
        }
        callbacks.on_checkpoint(step, ckpt, is_best=is_best, is_final=is_final)
        return ckpt

    stopped = False
    model.train()
    clock.start()
    while step < config.train_steps:
        if callbacks.should_stop():
            stopped = True
            break
        inputs, targets = next_batch()
        lr = optimizer.param_groups[0]["lr"]
        loss, correct, grad_norm = train_step(
            model, optimizer, inputs, targets, config.max_norm, last_step_only
        )
        meter.add(loss, correct, targets.numel(), grad_norm, lr)
        scheduler.step()
        step += 1

        due_log = step % config.log_every == 0
        due_eval = step % config.eval_every == 0
        due_sample = is_text and step % config.sample_every == 0
        # The checkpoint at train_steps is the final one, written after the loop.
        due_checkpoint = step % config.checkpoint_every == 0 and step < config.train_steps
        if due_log or due_eval or due_sample or due_checkpoint:
            with clock.paused():
                if due_log:
                    record_training()
                if due_eval:
                    evaluate()
                if due_sample:
                    for temperature, text in _training_samples(model, vocab, config, step):
                        callbacks.on_sample(step, temperature, text)
                if due_checkpoint:
                    checkpoint(is_final=False)

    clock.stop()
    if meter.steps:
        record_training()
    final = checkpoint(is_final=True)
    return TrainResult(step, stopped, final, best_val_loss, dict(metrics))


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    max_norm: float,
    last_step_only: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step -> (loss, correct predictions, gradient norm before clipping), on the device.

    The loop's step, exposed so that the benchmark times exactly what training runs.
    """
    logits, _ = model(inputs)
    loss, correct = _loss_and_correct(logits, targets, last_step_only)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # Clip the global gradient norm: an RNN's gradient can grow exponentially with the sequence
    # length (Pascanu et al. 2013), and one exploding step would wreck the weights learned so far.
    # The returned norm is the one before clipping, which is what the metric should show.
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), correct, grad_norm


def _loss_and_correct(
    logits: torch.Tensor, targets: torch.Tensor, last_step_only: bool, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and the number of correct argmax predictions.

    Palindrome: logits (B, T, 10) and targets (B,), scored after the last digit only. Text: logits
    (B, T, V) and targets (B, T), every step scored.
    """
    if last_step_only:
        logits = logits[:, -1]  # (B, 10)
    logits = logits.reshape(-1, logits.shape[-1])  # (N, C)
    targets = targets.reshape(-1)  # (N,)
    loss = F.cross_entropy(logits, targets, reduction=reduction)
    correct = (logits.detach().argmax(-1) == targets).sum()
    return loss, correct


@torch.no_grad()
def _evaluate(
    model: nn.Module, batches: Iterable[Batch], last_step_only: bool, *, carry_state: bool
) -> dict[str, float]:
    """Mean loss and accuracy; `carry_state` when each batch continues the one before (text)."""
    model.eval()
    try:
        total_loss = total_correct = 0.0
        count = 0
        state = None
        for inputs, targets in batches:
            logits, state = model(inputs, state if carry_state else None)
            loss, correct = _loss_and_correct(logits, targets, last_step_only, reduction="sum")
            total_loss = total_loss + loss
            total_correct = total_correct + correct
            count += targets.numel()
    finally:
        model.train()
    return {"val_loss": float(total_loss) / count, "val_accuracy": float(total_correct) / count}


def _training_samples(
    model: nn.Module, vocab: Vocabulary, config: TextConfig, step: int
) -> list[tuple[float, str]]:
    """A greedy and a temperature sample of `sample_length` characters from the same random start.

    Their generators are seeded from (seed, step) so they never touch the training RNG streams:
    sampling does not change the run.
    """
    random_seed = (config.seed << 32) + step
    generator = torch.Generator().manual_seed(random_seed)
    start = vocab.chars[int(torch.randint(len(vocab), (1,), generator=generator))]
    samples = []
    for temperature in (0.0, config.sample_temperature):
        continuation = generate(
            model, vocab, start, config.sample_length - 1, temperature, random_seed=random_seed
        )
        samples.append((temperature, start + continuation.text))
    return samples


def _cpu_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def _set_rng_state(rng: dict[str, Any], generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["data"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)


def _check_data(config: PalindromeConfig | TextConfig, data: PalindromeData | TextData) -> None:
    if isinstance(config, TextConfig):
        if not isinstance(data, TextData):
            raise ValueError(f"a text config needs TextData, got {type(data).__name__}")
    elif not isinstance(data, PalindromeData):
        raise ValueError(f"a palindrome config needs PalindromeData, got {type(data).__name__}")
    elif (data.input_length, data.encoding) != (config.input_length, config.input_encoding):
        raise ValueError(
            f"data has input_length={data.input_length}, encoding={data.encoding!r} but the config "
            f"asks for input_length={config.input_length}, input_encoding={config.input_encoding!r}"
        )


def _resume_vocabulary(ckpt: dict[str, Any], data: TextData) -> Vocabulary:
    check_checkpoint(ckpt)
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


def _check_resumable(
    ckpt: dict[str, Any], config: PalindromeConfig | TextConfig, model_config: dict[str, Any]
) -> None:
    check_checkpoint(ckpt)
    problem = resume_mismatch(ckpt, config, model_config)
    if problem is not None:
        raise CheckpointError(problem)


class _Meter:
    """Training metrics summed since the last record, on the device: a step never waits for the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.steps = 0
        self.targets = 0
        self.lr = 0.0

    def add(
        self, loss: torch.Tensor, correct: torch.Tensor, targets: int, grad_norm: torch.Tensor, lr: float
    ) -> None:
        self.loss += loss
        self.correct += correct
        self.grad_norm += grad_norm
        self.steps += 1
        self.targets += targets
        self.lr = lr

    def summary(self, seconds: float, batch_size: int, chars_per_step: int | None) -> dict[str, float]:
        """Means over the steps since the last summary (lr: the last step's), then start afresh."""
        seconds = max(seconds, 1e-9)
        values = {
            "loss": self.loss.item() / self.steps,
            "accuracy": self.correct.item() / self.targets,
            "grad_norm": self.grad_norm.item() / self.steps,
            "lr": self.lr,
            "examples_per_s": batch_size * self.steps / seconds,
        }
        if chars_per_step is not None:
            values["chars_per_s"] = chars_per_step * self.steps / seconds
        self._reset()
        return values


class _Stopwatch:
    """Training time only: what runs inside `paused()` (evaluation, samples, checkpoints) is left out.

    CUDA runs asynchronously, so the clock synchronises before every reading; without that it would
    time the kernel launches, not the work.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.elapsed = 0.0
        self._started = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> None:
        self.elapsed += self._now() - self._started

    def lap(self) -> float:
        """Seconds counted since the last lap (call while stopped)."""
        seconds, self.elapsed = self.elapsed, 0.0
        return seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()
