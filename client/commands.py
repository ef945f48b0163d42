"""The client subcommands of `rnnlab`: their arguments, what each one sends and what it prints
(`rnnlab session ...`'s are in client/sessions.py).

Machine-readable output (a job or experiment id, generated text, tables) goes to stdout; progress
bars and messages go to stderr, so `id=$(rnnlab train ... )` works. A refusal from the server
prints its `detail` and exits 1; argparse exits 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from client.flags import add_training_flags, sweep_axes, sweep_item, training_body
from client.http import ApiClient, ApiError
from client.progress import follow_experiment, follow_job
from client.sessions import add_session_commands
from client.settings import DEFAULT_URL, ClientSettings
from client.xray_commands import add_xray_commands

Command = Callable[[ApiClient, argparse.Namespace, Console], int]


def _metrics_line(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4g}" for name, value in sorted(metrics.items()))


def _ended(kind: str, id_: int, status: str, detail: str, console: Console) -> int:
    console.print(f"{kind} {id_} {status}{': ' + detail if detail else ''}")
    return 0 if status == "succeeded" else 1


def train(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    job = client.post("/train", training_body(args))
    print(job["id"], flush=True)
    if not args.wait:
        return 0
    job = follow_job(client, job["id"], console)
    detail = job["error"] or f"step {job['step']}  {_metrics_line(job['latest_metrics'])}"
    return _ended("job", job["id"], job["status"], detail, console)


def generate(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = {
        "job_id": args.job,
        "checkpoint_id": args.checkpoint,
        "model": args.model,
        "prompt": args.prompt,
        "length": args.length,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "random_seed": args.random_seed,
    }
    body = {k: v for k, v in body.items() if v is not None}
    sys.stdout.write(args.prompt)
    for event in client.stream_events("/generate/stream", body):
        sys.stdout.write(event.get("text", ""))
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _results_table(experiment: dict[str, Any]) -> Table:
    axes = list(experiment["sweep"])
    rows = experiment["results"]
    metrics = sorted({name for row in rows for name in row["final_metrics"] if name.startswith("val_")})
    table = Table(title=f"experiment {experiment['id']} ({experiment['status']})")
    for column in [*axes, "job", "status", "step", *metrics, "best_val_loss", "best_val_accuracy"]:
        table.add_column(column, justify="left" if column in ("status", "model") else "right")
    for row in rows:
        finals = [row["final_metrics"].get(name) for name in metrics]
        best = [row["best_val_loss"], row["best_val_accuracy"]]
        cells = [*(row["params"][axis] for axis in axes), row["job_id"], row["status"], row["step"]]
        cells += ["-" if v is None else f"{v:.4f}" for v in [*finals, *best]]
        table.add_row(*(str(cell) for cell in cells))
    return table


def experiment(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    body = training_body(args) | {"sweep": sweep_axes(args.sweep)}
    if args.name:
        body["name"] = args.name
    created = client.post("/experiments", body)
    print(created["id"], flush=True)
    if not args.wait:
        return 0
    final = follow_experiment(client, created["id"], console)
    Console(soft_wrap=True).print(_results_table(final))
    counts = ", ".join(f"{n} {status}" for status, n in final["counts"].items() if n)
    return _ended("experiment", final["id"], final["status"], counts, console)


def jobs(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    page = client.get("/jobs", status=args.status, limit=args.limit)
    table = Table(title=f"{len(page['items'])} of {page['total']} jobs")
    for column in ("id", "task", "model", "status", "progress", "step", "loss", "eta"):
        table.add_column(column)
    for job in page["items"]:
        eta = job["eta_seconds"]
        table.add_row(
            str(job["id"]),
            job["task"],
            job["model"],
            job["status"],
            f"{job['progress']:.0%}",
            f"{job['step']}/{job['total_steps']}",
            f"{job['latest_metrics']['loss']:.4f}" if "loss" in job["latest_metrics"] else "-",
            "-" if eta is None else f"{eta:.0f} s",
        )
    Console(soft_wrap=True).print(table)
    return 0


NEWLINE = "↵"  # a sample's newlines, shown in its one table cell


def timeline(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    """The job's learning timeline: each kept checkpoint's step, metrics and sample of one prompt."""
    answer = client.get(
        f"/jobs/{args.job_id}/timeline",
        prompt=args.prompt,
        length=args.length,
        temperature=args.temperature,
        random_seed=args.random_seed,
        checkpoints=args.checkpoints,
    )
    table = Table(title=f"job {args.job_id}: {answer['prompt']!r} at each checkpoint")
    for column in ("step", "val bits/char", "train acc", "sample"):
        table.add_column(column, justify="left" if column == "sample" else "right")
    for row in answer["rows"]:
        bits, accuracy = row["val_bits_per_char"], row["train_accuracy"]
        table.add_row(
            str(row["step"]),
            "-" if bits is None else f"{bits:.3f}",
            "-" if accuracy is None else f"{accuracy:.1%}",
            Text((answer["prompt"] + row["text"]).replace("\n", NEWLINE)),  # Text: no markup in a sample
        )
    Console(soft_wrap=True).print(table)
    console.print(
        f"random_seed {answer['random_seed']}, temperature {answer['temperature']:g}; bits/char: the "
        "validation loss at the checkpoint's step (or the latest before it) / ln 2"
    )
    return 0


def horizon(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    """The memory horizon of a text job's checkpoint: the mean gradient norm at each lag k."""
    out = client.get(
        f"/jobs/{args.job_id}/memory-horizon",
        checkpoint_id=args.checkpoint,
        max_lag=args.max_lag,
        windows=args.windows,
    )
    table = Table(title=f"job {args.job_id}, checkpoint {out['checkpoint_id']} (step {out['step']})")
    table.add_column("k", justify="right")
    table.add_column("mean ||d log p / d e(t-k)||", justify="right")
    for k, norm in zip(out["k"], out["mean_norm"], strict=True):
        table.add_row(str(k), f"{norm:.4e}")
    Console(soft_wrap=True).print(table)
    console.print(
        f"mean over {out['windows']} positions of the {out['text']} text ({out['text_length']} characters)"
    )
    return 0


def workers(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    """The workers table (GET /workers): live ones first, then the dead until they are pruned."""
    listed = client.get("/workers")
    alive = sum(1 for worker in listed if worker["alive"])
    table = Table(title=f"{alive} live of {len(listed)} workers")
    for column in ("name", "queue", "device", "alive", "heartbeat", "job", "finished"):
        table.add_column(column)
    for worker in listed:
        table.add_row(
            worker["name"],
            worker["queue"],
            worker["device"],
            "yes" if worker["alive"] else "no",
            worker["heartbeat_at"],
            "-" if worker["current_job_id"] is None else str(worker["current_job_id"]),
            str(worker["jobs_finished"]),
        )
    Console(soft_wrap=True).print(table)
    return 0


def cancel(client: ApiClient, args: argparse.Namespace, console: Console) -> int:
    job = client.post(f"/jobs/{args.job_id}/cancel")
    console.print(f"job {job['id']} {job['status']}{' (stopping)' if job['cancel_requested'] else ''}")
    return 0


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"server base URL (default: $RNNLAB_URL or {DEFAULT_URL})")
    parser.add_argument("--token", help="API token (default: $RNNLAB_TOKEN, else <data_dir>/api-token)")


def add_client_commands(commands: Any) -> None:
    """Add the client subcommands to `rnnlab`'s subparsers; each sets `client_command`."""

    def add(name: str, run: Command, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_, allow_abbrev=False)
        parser.set_defaults(client_command=run)
        _connection_flags(parser)
        return parser

    add_training_flags(add("train", train, "queue a training job on a server (POST /train)"))

    p = add("generate", generate, "continue a prompt with a text model, printed as it streams")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--job", type=int, help="the job whose latest checkpoint generates")
    model.add_argument("--checkpoint", type=int, help="a checkpoint id")
    model.add_argument("--model", help="a named model: name, name@alias or name:version")
    # --seed-text: the flag's name before `prompt`, kept working.
    p.add_argument("--prompt", "--seed-text", dest="prompt", default="", help="text to continue")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--random-seed", type=int, help="makes the text repeatable")

    p = add("experiment", experiment, "queue a sweep of training jobs (POST /experiments)")
    add_training_flags(p)
    p.add_argument(
        "--sweep",
        action="append",
        type=sweep_item,
        required=True,
        metavar="AXIS=V1,V2",
        help="a sweep axis and its values; repeat for more axes (e.g. --sweep model=rnn,lstm)",
    )
    p.add_argument("--name", help="a label for the experiment")

    p = add("jobs", jobs, "list jobs, newest first")
    # No choices here: the server checks the status and names the ones it has (one list, the server's).
    p.add_argument("--status", metavar="STATUS", help="only jobs in this status (e.g. running)")
    p.add_argument("--limit", type=int, default=20)

    p = add(
        "timeline", timeline, "a text job's samples of one prompt at each kept checkpoint, with its metrics"
    )
    p.add_argument("job_id", type=int)
    p.add_argument("--prompt", default="The ", help="the text every sample continues")
    p.add_argument("--length", type=int, default=80)
    p.add_argument("--temperature", type=float, help="0 is greedy (default: the server's, as /generate)")
    p.add_argument("--random-seed", type=int, default=1, help="one seed for every checkpoint")
    p.add_argument("--checkpoints", type=int, help="at most this many checkpoints, spread over the run")

    p = add("horizon", horizon, "a text job's memory horizon: how far back its predictions read")
    p.add_argument("job_id", type=int)
    p.add_argument("--checkpoint", type=int, help="one of the job's checkpoints (default: its latest)")
    p.add_argument("--max-lag", type=int, help="K: lags 0..K (default: the server's)")
    p.add_argument("--windows", type=int, help="positions averaged over (default: the server's)")

    add("workers", workers, "list the workers: queue, device, heartbeat, current job, jobs finished")

    p = add("cancel", cancel, "cancel a queued or running job")
    p.add_argument("job_id", type=int)

    add_xray_commands(add)
    sessions = commands.add_parser("session", help="keep, feed, continue and fork a text model's state")
    add_session_commands(sessions, _connection_flags)


def run_client_command(args: argparse.Namespace) -> int:
    settings = ClientSettings()
    base_url = args.url or settings.resolved_url
    token = args.token or settings.resolved_token()
    # No markup: server details and metric names are printed as they are, brackets included.
    console = Console(stderr=True, markup=False, highlight=False)
    client = ApiClient(base_url, token)
    try:
        code: int = args.client_command(client, args, console)
        return code
    except ApiError as exc:
        console.print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("stopped watching; the server carries on (rnnlab cancel ID stops a job)")
        return 130
    finally:
        client.close()
