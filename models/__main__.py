"""Command line for the training loop and sampling, without the service.

    python -m models train --task palindrome --input-length 5 --train-steps 300 --out ckpt.pt
    python -m models train --task text --corpus PATH --strip-gutenberg --out ckpt.pt
    python -m models train --corpus PATH --resume ckpt.pt --train-steps 2000 --out ckpt.pt
    python -m models sample --checkpoint ckpt.pt --seed-text "Once" --length 200 --temperature 0.8
    python -m models predict --checkpoint ckpt.pt --digits 01234

Every training-config field is a flag (`--hidden-size 64`); pydantic validates the values and names
a bad one. The field `seed` is `--random-seed`, as in `sample`: on this command line a random seed
is always `--random-seed` and the text to continue is `--seed-text`. A resumed run starts from the
checkpoint's config and applies the flags on top. Ctrl-C stops training cooperatively: the final
checkpoint is still written.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from models import checkpoint
from models.callbacks import TrainingCallbacks
from models.config import PalindromeConfig, TaskConfig, TextConfig
from models.corpus import load_corpus
from models.data import make_data
from models.sample import generate, predict_palindrome
from models.train import resolve_device, train

_CONFIG_FIELDS = {**PalindromeConfig.model_fields, **TextConfig.model_fields}
_CONFIG_FIELDS.pop("task")
# Flags whose name is not the field's: the config field `seed` keeps its name for the HTTP API.
_FLAG_NAMES = {"seed": "random-seed"}


class ConsoleCallbacks(TrainingCallbacks):
    """Prints metrics and samples; writes every checkpoint to `out` (the latest one wins)."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.stop_requested = False

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        print(f"step {step:>7}  " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)

    def on_sample(self, step: int, temperature: float, text: str) -> None:
        print(f"step {step:>7}  sample (temperature {temperature:g}): {text!r}", flush=True)

    def on_checkpoint(self, step: int, ckpt: dict[str, Any], *, is_best: bool, is_final: bool) -> None:
        if self.out is not None:
            checkpoint.save(ckpt, self.out)
            what = "final checkpoint" if is_final else "checkpoint"
            print(f"step {step:>7}  {what}{' (best)' if is_best else ''} -> {self.out}", flush=True)

    def should_stop(self) -> bool:
        return self.stop_requested


def _train(args: argparse.Namespace) -> int:
    resume = checkpoint.load(args.resume) if args.resume else None
    # Only the training-config fields: a checkpoint written by the service also stores its own fields.
    saved = resume["train_config"] if resume else {}
    values: dict[str, Any] = {k: v for k, v in saved.items() if k in _CONFIG_FIELDS or k == "task"}
    values.update({name: getattr(args, name) for name in _CONFIG_FIELDS if getattr(args, name) is not None})
    if args.task:
        values["task"] = args.task
    if "task" not in values:
        raise ValueError("--task is required (palindrome or text) unless resuming")
    config = TypeAdapter(TaskConfig).validate_python(values)
    text = None
    if config.task == "text":
        if args.corpus is None:
            raise ValueError("--corpus is required for the text task")
        text = load_corpus(args.corpus, strip_gutenberg=args.strip_gutenberg)
    data = make_data(config, text)

    callbacks = ConsoleCallbacks(args.out)

    def request_stop(signum: int, frame: object) -> None:
        print("stopping after this step (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        callbacks.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        result = train(config, data, callbacks, resume=resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    outcome = "stopped" if result.stopped else "done"
    print(f"{outcome} at step {result.step}; best val_loss {result.best_val_loss}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    ckpt = checkpoint.load(args.checkpoint)
    vocab = checkpoint.load_vocabulary(ckpt)
    if vocab is None:
        raise ValueError("this is a palindrome checkpoint: use `python -m models predict`")
    model = checkpoint.load_model(ckpt, resolve_device(args.device))
    result = generate(
        model, vocab, args.seed_text, args.length, args.temperature, args.top_k, args.top_p, args.random_seed
    )
    print(args.seed_text + result.text)
    print(f"random_seed {result.random_seed}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    ckpt = checkpoint.load(args.checkpoint)
    if ckpt["task"] != "palindrome":
        raise ValueError("this is a text checkpoint: use `python -m models sample`")
    model = checkpoint.load_model(ckpt, resolve_device(args.device))
    digit, probabilities = predict_palindrome(model, args.digits, ckpt["train_config"]["input_encoding"])
    print(digit)
    print("probabilities " + " ".join(f"{p:.4f}" for p in probabilities), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.split("\n")[0])
    # No abbreviated flags: `--seed` would silently still mean `--seed-text` in `sample`.
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", allow_abbrev=False, help="train a model and write checkpoints")
    p.set_defaults(func=_train)
    p.add_argument("--task", choices=["palindrome", "text"])
    p.add_argument("--corpus", type=Path, help="UTF-8 text file (text task)")
    p.add_argument(
        "--strip-gutenberg", action="store_true", help="drop the Project Gutenberg header and licence"
    )
    p.add_argument("--out", type=Path, help="checkpoint file, rewritten at every checkpoint")
    p.add_argument("--resume", type=Path, help="checkpoint to continue from")
    fields = p.add_argument_group("training config (models/config.py; defaults depend on the task)")
    for name, field in _CONFIG_FIELDS.items():
        flag = _FLAG_NAMES.get(name, name.replace("_", "-"))
        fields.add_argument(f"--{flag}", dest=name, metavar="V", help=field.description)

    p = commands.add_parser("sample", allow_abbrev=False, help="generate text from a text checkpoint")
    p.set_defaults(func=_sample)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--seed-text", default="", help="text to continue (default: a random first character)")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--random-seed", type=int)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])

    p = commands.add_parser("predict", allow_abbrev=False, help="predict the last digit of a palindrome")
    p.set_defaults(func=_predict)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--digits", required=True, help="the input digits, e.g. 01234")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except ValidationError as e:
        parser.exit(2, f"error: invalid training config:\n{e}\n")
    # CorpusError, CheckpointError and UnknownCharacters are ValueErrors.
    except (ValueError, OSError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
