"""The training loop: `train(config, data, callbacks) -> TrainResult`, the same for both tasks.

The tasks differ only in data and loss (see models/tasks.py): a palindrome is scored on the
prediction after the last input digit, text on every next-character prediction. Everything that
leaves the loop (metrics, checkpoints, samples, the step just done) goes through `TrainingCallbacks`,
and `should_stop()` cancels it cooperatively, so the loop runs unchanged in tests, the benchmarks,
the CLI and the worker.

Resuming: a checkpoint holds the model, optimizer and scheduler state, the data generator's state,
torch's RNG state and the task's own state (a palindrome curriculum's length and window), so on
CPU `train` for 2N steps and `train` for N, checkpoint, `train(..., resume=ckpt)` for N more give
bitwise-identical weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.callbacks import TrainingCallbacks
from models.checkpoint import FORMAT_VERSION, CheckpointError, check_checkpoint, resume_mismatch
from models.config import PalindromeConfig, TextConfig
from models.data import PalindromeData, TextData
from models.meters import Stopwatch, TrainingMeter
from models.registry import architecture_mismatch, build_model, initialisation_for
from models.schedule import make_scheduler
from models.streams import detached
from models.tasks import Batch, Task, make_task


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
    model: nn.Module | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train from scratch, or from `resume` (a checkpoint dict) on to `config.train_steps`.

    `model` (trained in place) replaces the one the registry would build for the config; it must be
    a model of the config's architecture (see `models.registry.architecture_mismatch`). A caller
    that wants the registry's initialisation seeds torch with `config.seed` before building it.
    """
    callbacks = callbacks if callbacks is not None else TrainingCallbacks()
    if resume is not None:
        resume = check_checkpoint(resume)  # a checkpoint of an older format comes back upgraded
    task = make_task(config, data, resume)
    device = resolve_device(config.device)
    if resume is not None:
        problem = resume_mismatch(resume, config, task.architecture)
        if problem is not None:
            raise CheckpointError(problem)

    torch.manual_seed(config.seed)  # initial weights (when built here) and dropout masks
    if model is None:
        model = build_model(task.architecture, **initialisation_for(config))
    else:
        problem = architecture_mismatch(model, task.architecture)
        if problem is not None:
            raise ValueError(f"the model does not match the config's architecture: {problem}")
    run = _Run(config, task, model.to(device), device, callbacks)
    if resume is not None:
        run.restore(resume)

    stopped = False
    run.model.train()
    run.clock.start()
    while run.step < config.train_steps:
        if callbacks.should_stop():
            stopped = True
            break
        run.advance()

        step = run.step
        due_log = step % config.log_every == 0
        due_eval = step % config.eval_every == 0
        due_sample = task.samples_due(step)
        # The checkpoint at train_steps is the final one, written after the loop.
        due_checkpoint = step % config.checkpoint_every == 0 and step < config.train_steps
        if due_log or due_eval or due_sample or due_checkpoint:
            with run.clock.paused():
                if due_log:
                    run.record_training()
                if due_eval:
                    run.evaluate()
                if due_sample:
                    for temperature, text in task.samples(run.model, step):
                        callbacks.on_sample(step, temperature, text)
                if due_checkpoint:
                    run.checkpoint(is_final=False)
        # Outside clock.paused(): what the callbacks do every step (a heartbeat) counts in the throughput.
        callbacks.on_step(step)

    run.clock.stop()
    if run.meter.steps:
        run.record_training()
    final = run.checkpoint(is_final=True)
    return TrainResult(run.step, stopped, final, run.best_val_loss, dict(run.metrics))


class _Run:
    """The state of one run (model, optimizer, scheduler, data RNG, step, metrics) and its reports."""

    def __init__(
        self,
        config: PalindromeConfig | TextConfig,
        task: Task,
        model: nn.Module,
        device: torch.device,
        callbacks: TrainingCallbacks,
    ) -> None:
        self.config = config
        self.task = task
        self.model = model
        self.device = device
        self.callbacks = callbacks
        self.optimizer = make_optimizer(config, model.parameters())
        self.scheduler = make_scheduler(config, self.optimizer)
        self.generator = torch.Generator().manual_seed(config.seed)  # the training batches
        # The forward pass in bfloat16: text only, as the hand-written palindrome cells' own backward
        # is written for float32.
        self.autocast = isinstance(config, TextConfig) and config.precision == "bfloat16"
        self.step = 0
        self.best_val_loss: float | None = None
        self.metrics: dict[str, float] = {}
        self.last_eval_step: int | None = None
        self.clock = Stopwatch(device)
        self.meter = TrainingMeter(device)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from checkpoint `ckpt`, which `resume_mismatch` accepted for this run."""
        try:
            self.model.load_state_dict(ckpt["model"])
            # A copy: load_state_dict keeps the given state tensors (Adam's moments) when their dtype
            # and device already fit, and the steps would then update the caller's checkpoint in place.
            self.optimizer.load_state_dict(copy.deepcopy(ckpt["optimizer"]))
            self.scheduler.load_state_dict(ckpt["scheduler"])
            rng = ckpt["rng"]
            torch.set_rng_state(rng["torch"])
            self.generator.set_state(rng["data"])
            if self.device.type == "cuda" and rng.get("cuda") is not None:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            self.task.load_state_dict(ckpt["task_state"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot resume from this checkpoint: {e}") from e
        self.step, self.best_val_loss, self.metrics = (
            ckpt["step"],
            ckpt["best_val_loss"],
            dict(ckpt["metrics"]),
        )

    def advance(self) -> None:
        """One optimizer step on the task's next training batch."""
        inputs, targets = self.task.train_batch(self.generator, self.device)
        lr = self.optimizer.param_groups[0]["lr"]
        loss, correct, grad_norm, final_state = train_step(
            self.model,
            self.optimizer,
            inputs,
            targets,
            self.config.max_norm,
            self.task.last_step_only,
            state=self.task.train_state(self.device),
            autocast=self.autocast,
        )
        self.task.keep_train_state(final_state)
        self.meter.add(loss, correct, targets.numel(), grad_norm, lr)
        self.task.observe(correct, targets.numel())
        self.scheduler.step()
        self.step += 1

    def record(self, values: dict[str, float]) -> None:
        self.metrics.update(values)
        self.callbacks.on_metrics(self.step, values)

    def record_training(self) -> None:
        values = self.meter.summary(self.clock.lap(), self.config.batch_size, self.task.chars_per_step)
        self.record(values | self.task.training_metrics())

    def evaluate(self) -> None:
        batches = self.task.eval_batches(self.device)
        values = _evaluate(
            self.model,
            batches,
            self.task.last_step_only,
            self.device,
            carry_state=self.task.carries_eval_state,
        )
        self.last_eval_step = self.step
        val_loss = values["val_loss"]
        if math.isfinite(val_loss) and (self.best_val_loss is None or val_loss < self.best_val_loss):
            self.best_val_loss = val_loss
        self.record(values)

    def checkpoint(self, *, is_final: bool) -> dict[str, Any]:
        if self.last_eval_step != self.step:
            self.evaluate()
        # The best checkpoint is the one whose own validation loss is the lowest seen in the run.
        is_best = self.best_val_loss is not None and self.metrics["val_loss"] <= self.best_val_loss
        vocab = self.task.vocab
        # CPU copies, not references to the live tensors: a caller may keep a checkpoint while
        # training goes on in place.
        ckpt = {
            "format": FORMAT_VERSION,
            "task": self.config.task,
            "architecture": dict(self.task.architecture),
            "train_config": self.config.model_dump(mode="json"),
            "vocab": list(vocab.chars) if vocab is not None else None,
            "step": self.step,
            "model": _cpu_copy(self.model.state_dict()),
            "optimizer": _cpu_copy(self.optimizer.state_dict()),
            "scheduler": copy.deepcopy(self.scheduler.state_dict()),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.generator.get_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            "best_val_loss": self.best_val_loss,
            "metrics": dict(self.metrics),
            "task_state": copy.deepcopy(self.task.state_dict()),
        }
        self.callbacks.on_checkpoint(self.step, ckpt, is_best=is_best, is_final=is_final)
        return ckpt


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    max_norm: float,
    last_step_only: bool,
    state: Any = None,
    autocast: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
    """One optimizer step from recurrent `state` (None: zeros) -> (loss, correct predictions, gradient
    norm before clipping, the final state detached), on the device; `autocast`: the forward pass in
    bfloat16 (TextConfig.precision).

    The loop's step, exposed so that the benchmark times exactly what training runs.
    """
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits, final_state = model(inputs, state)
        loss, correct = _loss_and_correct(logits, targets, last_step_only)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
    # Clip the global gradient norm: an RNN's gradient can grow exponentially with the sequence
    # length (Pascanu et al. 2013), and one exploding step would wreck the weights learned so far.
    # The returned norm is the one before clipping, which is what the metric should show.
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), correct, grad_norm, detached(final_state)


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
    model: nn.Module,
    batches: Iterable[Batch],
    last_step_only: bool,
    device: torch.device,
    *,
    carry_state: bool,
) -> dict[str, float]:
    """Mean loss and accuracy; `carry_state` when each batch continues the one before (text)."""
    model.eval()
    try:
        # Summed on the device; read once at the end, so evaluation never waits for the GPU per batch.
        total_loss = torch.zeros((), device=device)
        total_correct = torch.zeros((), device=device)
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


def _cpu_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj
