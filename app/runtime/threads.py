"""How many PyTorch threads each process gets, so the API's decode engines and a training worker on
the same machine do not fight over the same cores (`RNNLAB_API_THREADS`, `RNNLAB_WORKER_THREADS`).

Every process sets its share once, at start, through `use_threads`: PyTorch's thread pools are
process-wide, and the inter-op pool can only be sized before any parallel work ran.
"""

from __future__ import annotations

import logging
import os
import sys

from app.core.settings import Settings

log = logging.getLogger(__name__)

# The API's engine threads drop the GIL inside every torch op of a step (two dozen per character)
# and want it straight back; while the event loop thread is busy, each of those waits lasts up to
# Python's switch interval (5 ms by default). Beside a busy Python thread, a one-stream step took
# 3.6x its time alone on the 2-core development machine with 5 ms, 1.4x with 0.2 ms.
API_SWITCH_INTERVAL_S = 0.0002


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def api_threads(settings: Settings) -> int:
    """The API's share: a quarter of the cores, at least one. One decode step is a handful of small
    matmuls, which gain little from more threads; the rest is better spent on training."""
    return settings.api_threads or max(1, available_cores() // 4)


def serve_worker_threads(settings: Settings) -> int:
    """The share of the worker that `rnnlab serve` starts beside its API: the cores the API leaves."""
    return settings.worker_threads or max(1, available_cores() - api_threads(settings))


def worker_threads(settings: Settings) -> int:
    """A worker started on its own (deployment) has the machine to itself unless told otherwise."""
    return settings.worker_threads or available_cores()


def use_threads(count: int) -> None:
    """Size this process's intra-op and inter-op pools; call once, before any PyTorch work."""
    import torch

    torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError:
        # Only possible once per process and before parallel work started: a second call (an embedded
        # test process, a reloaded module) keeps the first size, which is the one that matters.
        log.debug("inter-op threads already set to %s", torch.get_num_interop_threads())
    log.info("PyTorch uses %s threads", count)


def tune_api_process(settings: Settings) -> None:
    """The API process's share of the cores, and quick GIL hand-offs for its engine threads."""
    use_threads(api_threads(settings))
    sys.setswitchinterval(API_SWITCH_INTERVAL_S)
