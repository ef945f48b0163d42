"""`rnnlab session new | append | generate | fork | clamp | show | list | delete`: a text model's state
kept on the server (POST /sessions and its sub-resources). Ids and generated text go to stdout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from client.http import ApiClient

Command = Callable[[ApiClient, argparse.Namespace, Console], int]


def _summary(session: dict[str, Any]) -> str:
    clamps = ", ".join(
        f"c[{c['layer']}][{c['unit']}]={c['value']:g} x{c['steps']}" for c in session["clamps"]
    )
    return (
        f"session {session['id']}: checkpoint {session['checkpoint_id']}, "
        f"{session['characters']} characters, expires {session['expires_at']}"
        + (f", clamps {clamps}" if clamps else "")
    )


def new(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = {"job_id": args.job, "checkpoint_id": args.checkpoint, "model": args.model, "prompt": args.prompt}
    session = client.post("/sessions", {k: v for k, v in body.items() if v is not None})
    print(session["id"], flush=True)
    console.print(_summary(session))
    return 0


def append(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    out = client.post(f"/sessions/{args.session_id}/append", {"text": args.text})
    bits = out["bits_per_character"]
    print("-" if bits is None else f"{bits:.4f}", flush=True)  # bits per character of the text
    if args.verbose:
        for char, b in zip(out["tokens"], out["surprisal_bits"], strict=True):
            console.print(f"{char!r}\t{'-' if b is None else f'{b:.3f}'}")
    console.print(_summary(out["session"]))
    return 0


def generate(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = {
        "length": args.length,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "random_seed": args.random_seed,
    }
    out = client.post(
        f"/sessions/{args.session_id}/generate", {k: v for k, v in body.items() if v is not None}
    )
    sys.stdout.write(out["text"] + "\n")
    console.print(f"random seed {out['random_seed']}; " + _summary(out["session"]))
    return 0


def fork(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    session = client.post(f"/sessions/{args.session_id}/fork", {})
    print(session["id"], flush=True)
    console.print(_summary(session))
    return 0


def clamp(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = {"layer": args.layer, "unit": args.unit, "value": args.value, "steps": args.steps}
    console.print(_summary(client.post(f"/sessions/{args.session_id}/clamp", body)))
    return 0


def show(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    print(_summary(client.get(f"/sessions/{args.session_id}")), flush=True)
    return 0


def list_sessions(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    table = Table(title="sessions")
    for column in ("id", "checkpoint", "characters", "clamps", "last used", "expires"):
        table.add_column(column)
    for s in client.get("/sessions")["sessions"]:
        row = [
            s["id"],
            s["checkpoint_id"],
            s["characters"],
            len(s["clamps"]),
            s["last_used_at"],
            s["expires_at"],
        ]
        table.add_row(*(str(cell) for cell in row))
    Console(soft_wrap=True).print(table)
    return 0


def delete(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    client.delete(f"/sessions/{args.session_id}")
    console.print(f"session {args.session_id} deleted")
    return 0


def add_session_commands(
    parser: argparse.ArgumentParser, connection_flags: Callable[[argparse.ArgumentParser], None]
) -> None:
    """`rnnlab session ACTION ...`: one sub-command per operation, each setting `client_command`."""
    actions = parser.add_subparsers(dest="session_action", required=True, metavar="ACTION")

    def add(name: str, run: Command, help_: str, *, with_id: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_, allow_abbrev=False)
        p.set_defaults(client_command=run)
        connection_flags(p)
        if with_id:
            p.add_argument("session_id")
        return p

    p = add("new", new, "a session holding a text model's state after a prompt; prints its id", with_id=False)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--job", type=int, help="the job whose latest checkpoint it uses")
    model.add_argument("--checkpoint", type=int, help="a checkpoint id")
    model.add_argument("--model", help="a named model: name, name@alias or name:version")
    p.add_argument("--prompt", default="", help="the text whose state it starts from")

    p = add("append", append, "feed text; prints its bits per character")
    p.add_argument("text")
    p.add_argument("--verbose", "-v", action="store_true", help="each character's surprisal (stderr)")

    p = add("generate", generate, "continue the session's state; prints the text")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--random-seed", type=int, help="makes the text repeatable")

    add("fork", fork, "copy the session's state into a new session; prints its id")

    p = add("clamp", clamp, "hold cell unit c[layer][unit] at a value for the next characters")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--unit", type=int, required=True)
    p.add_argument("--value", type=float, required=True)
    p.add_argument("--steps", type=int, required=True, help="characters it is held for")

    add("show", show, "the session's model, characters consumed, clamps and expiry")
    add("list", list_sessions, "this token's sessions", with_id=False)
    add("delete", delete, "delete the session")
