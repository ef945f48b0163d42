"""A token bucket per client, kept in the API process.

Each client (a bearer token, or the address of an anonymous caller) has a bucket of `burst` requests
that refills at `per_minute / 60` per second. With several API processes each has its own buckets: the
limit is per process, which is enough to stop a runaway script from filling the queue.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from time import monotonic

# Buckets of clients not seen for a while are dropped first once there are this many.
MAX_CLIENTS = 10_000


class RateLimiter:
    def __init__(self, *, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0  # requests per second
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (level, time)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float | None:
        """Take one request from `client`'s bucket: None if allowed, else seconds until it would be."""
        now = monotonic()
        with self._lock:
            level, then = self._buckets.pop(client, (float(self.burst), now))
            level = min(float(self.burst), level + (now - then) * self.rate)
            allowed = level >= 1.0
            if allowed:
                level -= 1.0
            self._buckets[client] = (level, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - level) / self.rate


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is let in."""
    return str(max(1, math.ceil(seconds)))
