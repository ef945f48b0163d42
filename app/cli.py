"""The `rnnlab` command: `serve | api | worker | migrate`, and a client of the HTTP API (client/).

`serve` is the embedded default: it migrates the database, then runs the API (uvicorn, in this
process) and a worker (a subprocess, restarted when it dies: app/runtime/supervisor.py) together, and stops
both on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from app.core.settings import Settings, get_settings
from client.commands import add_client_commands, run_client_command

log = logging.getLogger("rnnlab")
WORKER_STOP_TIMEOUT_S = 60  # a running job checkpoints before the worker exits


def migrate() -> None:
    from app.core.db import migrate as upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url)
    log.info("database migrated: %s", settings.resolved_database_url.split("@")[-1])


MAX_REQUEST_HEAD = 64 * 1024  # bytes: the longest query text (4,000 characters x 12 = 48 KB) and headers


def run_api(host: str, port: int) -> None:
    import uvicorn

    from app.api.token import with_api_token
    from app.main import create_app
    from app.runtime.threads import tune_api_process

    settings = with_api_token(get_settings())
    tune_api_process(settings)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        # Whose X-Forwarded-For sets the client address (and so an anonymous caller's rate bucket).
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Texts travel in the query of some GETs (GET /generate's prompt, a memory horizon's or a
        # gate-saturation figure's `text`, up to 4,000 characters): percent-encoded, 4-byte characters
        # take 12 bytes each, past h11's 16 KiB default for a request head (a bare 400).
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
    )


def run_worker(loglevel: str) -> None:
    # The one place app/ reaches into worker/: this process becomes the worker.
    from worker.celery_app import celery_app
    from worker.identity import this_worker

    identity = this_worker()  # the queue it consumes follows what it declares (worker/identity.py)
    log.info("worker %s: queue %s, device %s", identity.name, identity.queue, identity.device)
    celery_app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            identity.queue,
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def sweep_orphans() -> None:
    """Re-queue jobs a dead worker left running (the only worker of `serve`: nothing else runs them)."""
    from app.core.db import sessionmaker_for
    from app.core.queue import enqueuer, make_celery
    from app.services import supervision
    from worker.identity import identify

    settings = get_settings()
    enqueue = enqueuer(make_celery(settings))
    with sessionmaker_for(settings.resolved_database_url)() as session:
        # Called before `serve` starts or restarts its only worker, when nothing can be running: a
        # previous `serve` killed outright, or the worker that just died, left those jobs behind.
        supervision.sweep(
            session,
            enqueue=enqueue,
            queue=identify(settings).queue,  # the queue the worker it (re)starts will consume
            lease_seconds=None,
            max_attempts=settings.max_attempts,
        )


def serve(host: str, port: int) -> int:
    from app.runtime.supervisor import WorkerSupervisor

    # uvicorn re-raises the signal that stopped it once it is done; with this handler in place that
    # second delivery is a no-op, so the worker below is always stopped before this process exits.
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    migrate()
    sweep_orphans()
    from app.runtime.threads import serve_worker_threads

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


def address(args: argparse.Namespace, settings: Settings) -> tuple[str, int]:
    """Where `serve` / `api` listen: --host and --port, else the settings' (RNNLAB_HOST, RNNLAB_PORT)."""
    return args.host or settings.host, settings.port if args.port is None else args.port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("serve", "migrate, then API + worker together"), ("api", "the HTTP API only")):
        sub = commands.add_parser(name, help=help_)
        # Defaults from the settings (RNNLAB_HOST, RNNLAB_PORT), read after parsing: the client
        # subcommands never build the server's settings.
        sub.add_argument("--host", help="default: $RNNLAB_HOST, else 127.0.0.1")
        sub.add_argument("--port", type=int, help="default: $RNNLAB_PORT, else 8000")
    worker = commands.add_parser("worker", help="a Celery worker (one job at a time)")
    worker.add_argument("--loglevel", default="INFO")
    # Set as RNNLAB_WORKER_QUEUE / RNNLAB_WORKER_DEVICE, which the worker's settings read.
    worker.add_argument(
        "--queue",
        choices=("cpu", "gpu"),
        help="the queue it consumes; default: $RNNLAB_WORKER_QUEUE, else by device",
    )
    worker.add_argument(
        "--device", help="the device it declares (cpu, cuda:0); default: $RNNLAB_WORKER_DEVICE, else detected"
    )
    commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "client_command" in args:
        return run_client_command(args)  # a client of some server: no server logging set up

    from app.observability import configure_logging
    from app.runtime.preflight import ServiceUnreachable, check_services

    if args.command == "worker":
        # The worker's own settings (and its sweeper's) read these: one declaration, one place.
        for flag, variable in ((args.queue, "RNNLAB_WORKER_QUEUE"), (args.device, "RNNLAB_WORKER_DEVICE")):
            if flag is not None:
                os.environ[variable] = flag
        get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings)
    try:
        check_services(
            settings.resolved_database_url,
            settings.resolved_broker_url,
            wait_seconds=settings.startup_wait_seconds,
        )
    except ServiceUnreachable as exc:
        # One line, no traceback: under a restart policy this is what the operator's log repeats.
        print(f"rnnlab {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    if args.command == "serve":
        return serve(*address(args, settings))
    if args.command == "api":
        run_api(*address(args, settings))
    elif args.command == "worker":
        run_worker(args.loglevel)
    elif args.command == "migrate":
        migrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
