"""The `rnnlab` command: `serve | api | worker | migrate`, and a client of the HTTP API (app/client/).

`serve` is the embedded default: it migrates the database, then runs the API (uvicorn, in this
process) and a worker (a subprocess, restarted when it dies: app/supervisor.py) together, and stops
both on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from app.client.commands import add_client_commands, run_client_command
from app.settings import get_settings

log = logging.getLogger("rnnlab")
WORKER_STOP_TIMEOUT_S = 60  # a running job checkpoints before the worker exits


def migrate() -> None:
    from app.db import migrate as upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url)
    log.info("database migrated: %s", settings.resolved_database_url.split("@")[-1])


def run_api(host: str, port: int) -> None:
    import uvicorn

    from app.api_token import with_api_token
    from app.main import create_app
    from app.threads import tune_api_process

    settings = with_api_token(get_settings())
    tune_api_process(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)


def run_worker(loglevel: str) -> None:
    # The one place app/ reaches into worker/: this process becomes the worker.
    from worker.celery_app import celery_app

    queue = get_settings().queue
    celery_app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def sweep_orphans() -> None:
    """Re-queue jobs a dead worker left running (the only worker of `serve`: nothing else runs them)."""
    from app.db import sessionmaker_for
    from app.queue import enqueuer, make_celery
    from app.services import supervision

    settings = get_settings()
    enqueue = enqueuer(make_celery(settings), settings.queue)
    with sessionmaker_for(settings.resolved_database_url)() as session:
        # Called before `serve` starts or restarts its only worker, when nothing can be running: a
        # previous `serve` killed outright, or the worker that just died, left those jobs behind.
        supervision.sweep(
            session,
            enqueue=enqueue,
            queue=settings.queue,
            lease_seconds=None,
            max_attempts=settings.max_attempts,
        )


def serve(host: str, port: int) -> int:
    from app.supervisor import WorkerSupervisor

    # uvicorn re-raises the signal that stopped it once it is done; with this handler in place that
    # second delivery is a no-op, so the worker below is always stopped before this process exits.
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    migrate()
    sweep_orphans()
    from app.threads import serve_worker_threads

    # The worker takes the cores the API leaves (a worker started alone takes them all).
    threads = {"RNNLAB_WORKER_THREADS": str(serve_worker_threads(get_settings()))}
    worker = WorkerSupervisor(
        [sys.executable, "-m", "app.cli", "worker"], env=os.environ | threads, before_restart=sweep_orphans
    )
    worker.start()
    log.info("worker started (pid %s); API on http://%s:%s (docs at /docs)", worker.pid, host, port)
    try:
        if not received:
            run_api(host, port)  # returns after Ctrl-C / SIGTERM (uvicorn handles both)
    finally:
        worker.stop(WORKER_STOP_TIMEOUT_S)  # warm shutdown: a running job checkpoints and requeues
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("serve", "migrate, then API + worker together"), ("api", "the HTTP API only")):
        sub = commands.add_parser(name, help=help_)
        sub.add_argument("--host", default=os.environ.get("RNNLAB_HOST", "127.0.0.1"))
        sub.add_argument("--port", type=int, default=int(os.environ.get("RNNLAB_PORT", "8000")))
    worker = commands.add_parser("worker", help="a Celery worker (one job at a time)")
    worker.add_argument("--loglevel", default="INFO")
    commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    add_client_commands(commands)
    args = parser.parse_args(argv)
    if "client_command" in args:
        return run_client_command(args)  # a client of some server: no server logging set up

    from app.observability import configure_logging

    configure_logging()
    if args.command == "serve":
        return serve(args.host, args.port)
    if args.command == "api":
        run_api(args.host, args.port)
    elif args.command == "worker":
        run_worker(args.loglevel)
    elif args.command == "migrate":
        migrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
