"""Who this worker is: its name, the queue it consumes and the device it declares.

Declared, not probed deeply: `RNNLAB_WORKER_DEVICE` (`cpu`, `cuda:0`, ...) and `RNNLAB_WORKER_QUEUE`
(`cpu` or `gpu`) say it, and `rnnlab worker --device --queue` set them. Left empty, the device is
`cuda:0` when this process sees a GPU (CUDA_VISIBLE_DEVICES pins one GPU per worker: it is then the
process's `cuda:0`) and `cpu` otherwise, and the queue follows the device. A CPU process may declare
the GPU queue (the routing tests do: there is no GPU here); its device then still says `cpu`.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from app.core.settings import Settings, get_settings
from app.core.tables import utcnow
from app.services.attempts import Runner
from app.services.workers import WorkerIdentity


def detect_device() -> str:
    """`cuda:0` when this process can use a GPU, else `cpu`; torch is asked only where a driver is."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"  # hidden on purpose: a CPU worker on a GPU machine
    if not Path("/proc/driver/nvidia").exists():
        return "cpu"  # no NVIDIA driver: skip importing torch at start
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def identify(settings: Settings) -> WorkerIdentity:
    device = settings.worker_device or detect_device()
    kind = settings.worker_queue or ("gpu" if device.startswith("cuda") else "cpu")
    hostname = socket.gethostname()
    return WorkerIdentity(
        name=f"{hostname}:{os.getpid()}",
        hostname=hostname,
        pid=os.getpid(),
        queue=settings.queue_of(kind),
        device=device,
        started_at=utcnow(),
    )


@lru_cache(maxsize=1)
def this_worker() -> WorkerIdentity:
    """This worker process's identity, fixed at its first use (the solo pool never forks)."""
    return identify(get_settings())


def this_runner() -> Runner:
    """What each attempt this worker makes records about it."""
    identity = this_worker()
    return Runner(worker=identity.name, device=identity.device)
