"""`rnnlab serve`'s worker supervision: a child process started again, with backoff, when it dies.

A worker killed outright (SIGKILL, the OOM killer) or crashing exits with a signal or a non-zero code:
it is restarted after a delay that doubles with each quick death (1 s, 2 s, 4 s ... capped), and resets
once a worker has lived long enough to count as healthy. Exit code 0 is the worker's warm shutdown,
which only a signal asks for: Ctrl-C in a terminal reaches the worker with `serve` (one process group),
so that exit is expected and the worker is not started again.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from time import monotonic

log = logging.getLogger("rnnlab")


class WorkerSupervisor:
    def __init__(
        self,
        command: Sequence[str],
        *,
        before_restart: Callable[[], None],
        env: Mapping[str, str] | None = None,
        first_delay_s: float = 1.0,
        max_delay_s: float = 30.0,
        healthy_after_s: float = 60.0,
    ) -> None:
        """`before_restart` runs after a death and before the next start (serve re-queues the dead
        worker's job there, so it resumes without waiting for the lease to expire)."""
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.before_restart = before_restart
        self.first_delay_s, self.max_delay_s, self.healthy_after_s = (
            first_delay_s,
            max_delay_s,
            healthy_after_s,
        )
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._watcher = threading.Thread(target=self._watch, name="rnnlab-worker-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def watching(self) -> bool:
        """False once the supervisor gave up its worker (stopped, or the worker shut down on request)."""
        return self._watcher.is_alive()

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def stop(self, timeout: float) -> None:
        """SIGTERM the worker once (it checkpoints and re-queues its job), then wait; kill past `timeout`."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop within %s s; killing it", timeout)
                proc.kill()
                proc.wait()
        self._watcher.join(timeout=5)

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(self.command, env=self.env)
        self._started_at = monotonic()

    def _watch(self) -> None:
        delay = self.first_delay_s
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            lived = monotonic() - self._started_at
            if self._stopping.is_set():
                return
            if code == 0:
                log.warning("worker (pid %s) shut down on request (exit code 0); not restarting it", proc.pid)
                return
            if lived >= self.healthy_after_s:
                delay = self.first_delay_s
            self.restarts += 1
            log.error(
                "worker (pid %s) exited unexpectedly with code %s after %.1f s; restart %d in %.1f s",
                proc.pid,
                code,
                lived,
                self.restarts,
                delay,
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.max_delay_s)
            try:
                self.before_restart()
            except Exception:
                log.exception("could not re-queue the dead worker's jobs; its sweep will after the lease")
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()
            log.info("worker restarted (pid %s)", self.pid)
