"""The sweep every live worker runs in a daemon thread: liveness, dead workers' jobs, unsent jobs.

Every `RNNLAB_SWEEP_SECONDS` (default: a quarter of the lease) it
1. writes this worker's heartbeat row (`/ready` and `rnnlab_workers` count those rows);
2. puts running jobs whose heartbeat is older than `RNNLAB_LEASE_SECONDS` back in the queue, or fails
   them once their workers died `RNNLAB_MAX_ATTEMPTS` times (`supervision.release_orphans`);
3. sends every queued job the broker never received: posted while it was down, or just released
   (`supervision.dispatch_pending`).

Why a thread in each worker rather than Celery beat: beat is one more process that must run exactly
once (and whose own death nobody would notice), and it sends its schedule through the broker, which
is the very thing that may be down when unsent jobs pile up. A thread sweeps as long as any worker
lives, needs only the database, and the sweeps' conditional UPDATEs make several of them at once safe.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

from app.core.db import sessionmaker_for
from app.core.queue import enqueuer, make_celery
from app.core.settings import Settings, get_settings
from app.services import supervision, workers
from worker.identity import this_worker

log = logging.getLogger(__name__)

# The job this worker is running (the solo pool runs one at a time); the task sets it.
current_job: int | None = None


class Sweeper:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = sessionmaker_for(settings.resolved_database_url)
        # A client of its own: the worker's app belongs to the consumer in the main thread.
        self.enqueue = enqueuer(make_celery(settings))
        self.identity = this_worker()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rnnlab-sweeper", daemon=True)

    def start(self) -> None:
        """Sweep once now (so the worker is visibly alive as soon as it consumes), then periodically."""
        self._sweep_logging_errors()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
        try:
            with self.sessions() as session:
                workers.forget(session, self.identity.name)
        except Exception as exc:
            log.warning("could not remove this worker's heartbeat row: %s", exc)

    def sweep(self) -> None:
        lease = self.settings.lease_seconds
        with self.sessions() as session:
            workers.beat(session, self.identity, current_job_id=current_job)
            workers.prune(session, lease_seconds=lease)
            supervision.sweep(
                session,
                enqueue=self.enqueue,
                queue=self.identity.queue,  # the queue this worker consumes
                lease_seconds=lease,
                max_attempts=self.settings.max_attempts,
            )

    def _run(self) -> None:
        while not self._stopped.wait(self.settings.resolved_sweep_seconds):
            self._sweep_logging_errors()

    def _sweep_logging_errors(self) -> None:
        try:
            self.sweep()
        except Exception as exc:
            # The database or the broker is down: the next sweep tries again.
            log.warning(
                "sweep failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""
            )


_sweeper: Sweeper | None = None


def start_sweeper(**_: Any) -> None:
    global _sweeper
    _sweeper = Sweeper(get_settings())
    _sweeper.start()


def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()


# Started by worker/celery_app.py at worker_ready (before the ready file is written); stopped here.
signals.worker_shutdown.connect(_stop_sweeper)
