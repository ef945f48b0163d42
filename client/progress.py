"""Following a job or an experiment until it ends, with a progress bar on stderr (rich)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from client.http import ApiClient

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
EXPERIMENT_FINISHED = frozenset({"succeeded", "partial", "failed", "cancelled"})
POLL_S = 0.5


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _loss(metrics: dict[str, float]) -> str:
    return f"{metrics['loss']:.4f}" if "loss" in metrics else "-"


def _progress_bar(console: Console) -> Progress:
    # The ETA is the server's (from its recent steps/s), not one guessed from how often we poll.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}  ETA {task.fields[eta]}"),
        console=console,
    )


def follow_job(client: ApiClient, job_id: int, console: Console) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job has finished; return its last state."""
    job = client.get(f"/jobs/{job_id}")
    with _progress_bar(console) as bar:
        task = bar.add_task(f"job {job_id}", total=job["total_steps"], loss="-", eta=_eta(None))
        while True:
            bar.update(
                task,
                description=f"job {job_id} {job['status']}",
                completed=job["step"],
                loss=_loss(job["latest_metrics"]),
                eta=_eta(job["eta_seconds"]),
            )
            if job["status"] in FINISHED:
                return dict(job)
            time.sleep(POLL_S)
            job = client.get(f"/jobs/{job_id}")


def _experiment_steps(experiment: dict[str, Any]) -> tuple[int, int]:
    """(steps done, steps in all) over the experiment's jobs; `train_steps` may itself be an axis."""
    default_steps = experiment["base_config"].get("train_steps", 1000)
    rows = experiment["results"]
    total = sum(int(row["params"].get("train_steps", default_steps)) for row in rows)
    return sum(row["step"] for row in rows), total


def _rate_eta(start: tuple[float, int], done: int, total: int) -> float | None:
    """Seconds left at the average rate since we started watching (jobs run on however many workers)."""
    elapsed, progressed = time.monotonic() - start[0], done - start[1]
    return (total - done) * elapsed / progressed if progressed > 0 else None


def follow_experiment(client: ApiClient, experiment_id: int, console: Console) -> dict[str, Any]:
    """Poll GET /experiments/{id} until every job has ended; return its last state."""
    experiment = client.get(f"/experiments/{experiment_id}")
    done, total = _experiment_steps(experiment)
    start = (time.monotonic(), done)
    with _progress_bar(console) as bar:
        task = bar.add_task(f"experiment {experiment_id}", total=total, loss="-", eta=_eta(None))
        while True:
            done, total = _experiment_steps(experiment)
            counts = experiment["counts"]
            ended = sum(counts.get(status, 0) for status in FINISHED)
            running = [row for row in experiment["results"] if row["status"] == "running"]
            bar.update(
                task,
                description=f"experiment {experiment_id}: {ended}/{experiment['jobs']} jobs ended",
                completed=done,
                total=total,
                loss=_loss(running[0]["final_metrics"]) if running else "-",
                eta=_eta(_rate_eta(start, done, total)),
            )
            if experiment["status"] in EXPERIMENT_FINISHED:
                return dict(experiment)
            time.sleep(POLL_S)
            experiment = client.get(f"/experiments/{experiment_id}")
