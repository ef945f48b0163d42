"""The course's accuracy-against-length experiment, run through the service: one POST /experiments.

Target (issue 10), on this machine's 2-core CPU: model in {rnn, lstm, phased_lstm} x input_length in
{5, 10, 20, 30} x 2 seeds finishes within 30 minutes; the RNN falls towards chance (10 %) as the
length grows, the LSTM and the Phased LSTM stay at >= 99 % held-out accuracy up to length 30.

What runs is the real service, not the training loop called in-process: this script starts its own
`rnnlab serve` (API + one Celery worker, SQLite and the filesystem broker in a temporary data dir),
posts the experiment, polls GET /experiments/{id} until every job has ended, then prints the results
table, writes results.csv and the figure (plot.png) to --out, and says whether each target was met.
The wall time therefore includes queueing, checkpoints and metric writes, as a user would see it.

    .venv/bin/python bench/quality_experiment.py                                 # the full grid
    .venv/bin/python bench/quality_experiment.py --lengths 5 20 --seeds 0        # a reduced grid
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
CHANCE = 0.1
TARGET = 0.99


def start_service(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNLAB_")}
    env |= {"RNNLAB_DATA_DIR": str(data_dir), "RNNLAB_LOG_LEVEL": "WARNING"}
    rnnlab = Path(sys.executable).parent / "rnnlab"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(rnnlab), "serve", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rnnlab serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("rnnlab serve was not ready within 180 s")


def wait_for_experiment(client: httpx.Client, experiment_id: int, poll_s: float) -> dict[str, Any]:
    last = ""
    while True:
        experiment = client.get(f"/experiments/{experiment_id}").json()
        counts = ", ".join(f"{k} {v}" for k, v in experiment["counts"].items() if v)
        if counts != last:
            print(f"  [{time.strftime('%H:%M:%S')}] {experiment['status']}: {counts}", flush=True)
            last = counts
        if experiment["status"] not in ("queued", "running"):
            return experiment
        time.sleep(poll_s)


# Issue 20's extended figure: the course's models and the LSTM with each ingredient alone, then all
# of them together, as named variants of one experiment (the course recipe is the base body).
EXTENDED_VARIANTS: dict[str, dict[str, Any]] = {
    "rnn": {"model": "rnn"},
    "lstm_course": {},
    "lstm_adam": {"optimizer": "adam"},
    "lstm_chrono": {"init": "chrono"},
    "lstm_orthogonal": {"init": "orthogonal"},
    "lstm_curriculum": {"curriculum_start": 10},
    "lstm_all": {"optimizer": "adam", "init": "chrono", "curriculum_start": 10},
    "phased_lstm": {"model": "phased_lstm"},
}
EXTENDED_LENGTHS = [10, 20, 40, 60, 80, 100]


def summary_table(
    experiment: dict[str, Any], arm: str = "model", metric: str = "final"
) -> tuple[str, dict[tuple[str, int], list[float]]]:
    """Held-out accuracy per (arm, length), the final or the best of each job: mean [min, max] over seeds."""
    cells: dict[tuple[str, int], list[float]] = {}
    for row in experiment["results"]:
        if metric == "best":
            accuracy = row["best_val_accuracy"] if row["best_val_accuracy"] is not None else float("nan")
        else:
            accuracy = row["final_metrics"].get("val_accuracy", float("nan"))
        cells.setdefault((row["params"][arm], row["params"]["input_length"]), []).append(accuracy)
    models = experiment["sweep"][arm]
    lengths = experiment["sweep"]["input_length"]
    width = max(12, *(len(str(m)) for m in models))
    lines = [f"  {arm:<{width}} " + "".join(f"{f'L={n}':>22}" for n in lengths)]
    for model in models:
        row = ""
        for n in lengths:
            values = cells[(model, n)]
            row += f"{statistics.fmean(values):>8.3f} [{min(values):.3f}-{max(values):.3f}]"
        lines.append(f"  {model:<{width}} {row}")
    return "\n".join(lines), cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["rnn", "lstm", "phased_lstm"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--extended",
        action="store_true",
        help="issue 20's figure: EXTENDED_VARIANTS x lengths 10..100 (--lengths, --seeds apply)",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=Path("bench-experiment"), help="results.csv, plot.png")
    args = parser.parse_args()

    body = {
        "task": "palindrome",
        "name": "accuracy against palindrome length",
        "train_steps": args.train_steps,
        "hidden_size": args.hidden_size,
        "batch_size": args.batch_size,
        "eval_every": 100,
        "log_every": 50,
        "checkpoint_every": args.train_steps,  # only the final one: it is not what is measured
        "device": "cpu",
        "sweep": {"model": args.models, "input_length": args.lengths, "seed": args.seeds},
    }
    arm = "model"
    if args.extended:
        arm = "variant"
        lengths = args.lengths if args.lengths != parser.get_default("lengths") else EXTENDED_LENGTHS
        body["name"] = "accuracy against palindrome length: the course's models and the LSTM's ingredients"
        body["variants"] = EXTENDED_VARIANTS
        body["sweep"] = {"input_length": lengths} | ({"seed": args.seeds} if len(args.seeds) > 1 else {})
        if len(args.seeds) == 1:
            body["seed"] = args.seeds[0]
        args.models, args.lengths = list(EXTENDED_VARIANTS), lengths
    jobs = len(args.models) * len(args.lengths) * len(args.seeds)
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{jobs} jobs of {args.train_steps} steps, hidden {args.hidden_size}, batch {args.batch_size}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        proc = start_service(Path(tmp), args.port, args.out / "serve.log")
        try:
            # `rnnlab serve` without RNNLAB_API_TOKENS wrote its own token there at start.
            auth = {"Authorization": f"Bearer {(Path(tmp) / 'api-token').read_text().strip()}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", headers=auth, timeout=60) as client:
                started = time.perf_counter()
                response = client.post("/experiments", json=body)
                response.raise_for_status()
                experiment_id = response.json()["id"]
                experiment = wait_for_experiment(client, experiment_id, poll_s=5)
                wall = time.perf_counter() - started
                url = f"/experiments/{experiment_id}"
                (args.out / "results.csv").write_text(client.get(f"{url}/results.csv").text)
                for metric, name in (("val_accuracy", "plot.png"), ("best_val_accuracy", "plot-best.png")):
                    plot = client.get(
                        f"{url}/plot.png", params={"x": "input_length", "hue": arm, "metric": metric}
                    )
                    (args.out / name).write_bytes(plot.content)
        finally:
            proc.terminate()
            proc.wait(120)

    table, cells = summary_table(experiment, arm)
    print(f"\nFinal held-out accuracy (mean [min-max] over seeds {args.seeds}):\n{table}")
    best_table, _ = summary_table(experiment, arm, "best")
    print(f"\nBest held-out accuracy over each run:\n{best_table}")
    print(f"\nexperiment {experiment['status']}; wall time {wall / 60:.1f} min for {jobs} jobs")
    print(f"wrote {args.out / 'results.csv'} and {args.out / 'plot.png'}")
    longest, shortest = max(args.lengths), min(args.lengths)
    if args.extended:
        return
    if "rnn" in args.models:
        rnn_long = statistics.fmean(cells[("rnn", longest)])
        falling = rnn_long < statistics.fmean(cells[("rnn", shortest)])
        print(f"RNN falls towards chance: {'met' if falling else 'MISSED'} (L={longest}: {rnn_long:.3f})")
    for model in ("lstm", "phased_lstm"):
        if model in args.models:
            worst = min(min(cells[(model, n)]) for n in args.lengths)
            verdict = "met" if worst >= TARGET else "MISSED"
            print(f"{model} >= {TARGET:.0%} at every length: {verdict} (worst {worst:.3f})")
    print(f"within 30 minutes: {'met' if wall <= 1800 else 'MISSED'}")


if __name__ == "__main__":
    main()
