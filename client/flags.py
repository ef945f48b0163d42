"""The training config as command-line flags, and the request bodies those flags make.

The flags come from the training configs themselves (models/config.py: pydantic, torch-free), so a
new config field is a new flag without a change here. Values go to the server as given; it validates
them and names a bad one, as it does for any HTTP client.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from models.config import PalindromeConfig, TextConfig

CONFIGS = (PalindromeConfig, TextConfig)
TASKS = [config.model_fields["task"].default for config in CONFIGS]
# Every training-config field is a flag, as in `python -m models train`; `seed` is `--random-seed` there
# and here, because on a command line a random seed is always `--random-seed`.
CONFIG_FIELDS = {name: field for config in CONFIGS for name, field in config.model_fields.items()}
CONFIG_FIELDS.pop("task")
FLAG_NAMES = {"seed": "random-seed"}
SERVICE_FLAGS = {
    "dataset_id": "corpus to train on (text; default the built-in one)",
    "resume_from": "checkpoint id to continue from",
}


def _scalar(text: str) -> Any:
    """A flag's value as JSON would have it ("64" -> 64, "1e-3" -> 0.001, "lstm" stays a string)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def training_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /train body: the task and every training flag given."""
    given = {name: getattr(args, name) for name in [*CONFIG_FIELDS, *SERVICE_FLAGS]}
    values = {name: _scalar(v) if name in CONFIG_FIELDS else v for name, v in given.items() if v is not None}
    return {"task": args.task, **values}


def sweep_axes(items: list[str]) -> dict[str, list[Any]]:
    """`["model=rnn,lstm", "input-length=5,10"]` -> `{"model": ["rnn", "lstm"], "input_length": [5, 10]}`."""
    sweep: dict[str, list[Any]] = {}
    for item in items:
        axis, _, values = item.partition("=")
        name = axis.strip().replace("-", "_")
        name = {"random_seed": "seed"}.get(name, name)  # the flag's name for the config field `seed`
        sweep[name] = [_scalar(v.strip()) for v in values.split(",") if v.strip()]
    return sweep


def sweep_item(text: str) -> str:
    """argparse type of `--sweep`: a usage error (exit 2) for an axis without values."""
    if "=" not in text or not text.partition("=")[2].strip():
        raise argparse.ArgumentTypeError(f"expected AXIS=V1,V2,... (e.g. model=rnn,lstm), got {text!r}")
    return text


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, required=True)
    fields = parser.add_argument_group("training config (models/config.py; defaults depend on the task)")
    for name, field in CONFIG_FIELDS.items():
        flag = FLAG_NAMES.get(name, name.replace("_", "-"))
        fields.add_argument(f"--{flag}", dest=name, metavar="V", help=field.description)
    for name, help_ in SERVICE_FLAGS.items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, metavar="ID", help=help_)
    parser.add_argument("--wait", action="store_true", help="follow it with a progress bar until it ends")
