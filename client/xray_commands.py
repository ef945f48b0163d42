"""`rnnlab analyze` and `rnnlab units`: the X-ray of a model (POST /analyze, POST /analyze/units).

Tables go to stdout (one row per position, or per ranked unit); `--json` prints the server's answer
as it is, for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from client.http import ApiClient

Add = Callable[[str, Callable[[ApiClient, argparse.Namespace, Console], int], str], argparse.ArgumentParser]
FEATURES = ["in_quotes", "in_brackets", "line_position", "word_start", "vowel"]


def _model_ref(args: argparse.Namespace) -> dict[str, Any]:
    ref = {"job_id": args.job, "checkpoint_id": args.checkpoint, "model": args.model}
    return {k: v for k, v in ref.items() if v is not None}


def _text(args: argparse.Namespace) -> str | None:
    return Path(args.text_file).read_text(encoding="utf-8") if args.text_file else args.text


def _print_table(table: Table) -> None:
    Console(markup=False, highlight=False, soft_wrap=True).print(table)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def analyze(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = _model_ref(args) | {"top": args.top}
    text = _text(args)
    body |= {"text": text} if text is not None else {"digits": args.digits}
    if args.layer:
        body["layers"] = args.layer
    if args.unit:
        body["units"] = args.unit
    signal = args.signal or "c"
    if not args.json or args.signal:
        body["signals"] = [signal]  # the table shows one: the server lists only it (and names a wrong one)
    result = client.post("/analyze", body)
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table("pos", "token", box=None)
    columns: list[list[str]] = [
        [str(n) for n in range(len(result["tokens"]))],
        [repr(t) for t in result["tokens"]],
    ]
    if result["text"] is not None:
        positions = result["text"]
        table.add_column("bits")
        table.add_column("entropy")
        table.add_column("expected")
        columns += [
            [_fmt(v) for v in positions["surprisal_bits"]],
            [_fmt(v) for v in positions["entropy_bits"]],
            [" ".join(f"{c!r}:{p:.2f}" for c, p in (top or {}).items()) for top in positions["top"]],
        ]
    else:
        digits = result["digits"]
        table.add_column("predicts")
        table.add_column("p")
        columns += [
            [str(d) for d in digits["predictions"]],
            [
                f"{probs[d]:.3f}"
                for d, probs in zip(digits["predictions"], digits["probabilities"], strict=True)
            ],
        ]
    for layer in result["layers"]:
        for unit, values in zip(layer["units"], layer["signals"][signal], strict=True):
            table.add_column(f"L{layer['layer']}.{unit} {signal}", justify="right")
            columns.append([f"{v:+.3f}" for v in values])
    for row in zip(*columns, strict=True):
        table.add_row(*row)
    _print_table(table)
    return 0


def units(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = _model_ref(args) | {
        "text": _text(args),
        "layer": args.layer,
        "signal": args.signal,
        "top": args.top,
    }
    body |= {"regex": args.regex} if args.regex is not None else {"feature": args.feature}
    result = client.post("/analyze/units", body)
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table("rank", "unit", "r", box=None)
    for rank, unit in enumerate(result["units"], 1):
        table.add_row(str(rank), str(unit["unit"]), f"{unit['r']:+.3f}")
    _print_table(table)
    sys.stdout.write(f"feature {result['feature']}, layer {result['layer']}, signal {result['signal']}, ")
    sys.stdout.write(f"{result['positions']} positions; excerpt: {result['excerpt']!r}\n")
    return 0


def _model_flags(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--job", type=int, help="the job whose latest checkpoint is read")
    model.add_argument("--checkpoint", type=int, help="a checkpoint id")
    model.add_argument("--model", help="a named model: name, name@alias or name:version")
    parser.add_argument("--json", action="store_true", help="print the server's JSON answer")


def add_xray_commands(add: Add) -> None:
    p = add("analyze", analyze, "the X-ray of a model: each unit's gates at every position (POST /analyze)")
    _model_flags(p)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="text for a text model")
    given.add_argument("--text-file", help="a UTF-8 file whose text a text model reads")
    given.add_argument("--digits", help="digits for a palindrome model")
    p.add_argument("--layer", type=int, action="append", help="a layer to show (repeat; default all)")
    p.add_argument("--unit", type=int, action="append", help="a unit to show (repeat; default all)")
    p.add_argument(
        "--signal", help="the column per unit: i, f, g, o, c, h or k (default c; with --json, all)"
    )
    p.add_argument("--top", type=int, default=3, help="expected characters per position")

    p = add(
        "units", units, "units of a text model ranked by how well they track a feature (POST /analyze/units)"
    )
    _model_flags(p)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--text")
    given.add_argument("--text-file")
    feature = p.add_mutually_exclusive_group(required=True)
    feature.add_argument("--feature", choices=FEATURES)
    feature.add_argument("--regex", help="characters inside a match are 1, the rest 0")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--signal", choices=["c", "h"], default="c")
    p.add_argument("--top", type=int, default=5)
