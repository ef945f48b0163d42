"""Scrape-time metrics: jobs (from the database) and queue depth (from the broker).

The API and the worker are separate processes, so what the worker knows (jobs by status, training
speed) is read from the database when Prometheus scrapes. A scrape never fails because the database
or the broker is down: it leaves those series out and counts the failure in `rnnlab_scrape_errors_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.db import sessionmaker_for
from app.services import job_stats

log = logging.getLogger(__name__)


def queue_depth(broker_url: str, queue: str, transport_options: dict[str, Any] | None = None) -> int:
    """Messages waiting in `queue`: Redis LLEN (all priority lists), or files in a filesystem transport."""
    scheme = urlsplit(broker_url).scheme
    if scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            # Celery's Redis transport keeps one list per priority: `queue` and `queue\x06\x16N`.
            sep = "\x06\x16"
            keys = [queue] + [f"{queue}{sep}{p}" for p in range(10)]
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                return int(sum(pipe.execute()))
        finally:
            client.close()
    if scheme == "filesystem":
        folder = (transport_options or {}).get("data_folder_in")
        if not folder:
            raise ValueError("filesystem broker without transport option data_folder_in")
        # kombu names each message `<timestamp>_<uuid>.<queue>.msg`.
        return sum(1 for p in Path(folder).glob(f"*.{queue}.msg"))
    if scheme == "memory":
        return 0
    raise ValueError(f"queue depth is not supported for broker scheme {scheme!r}")


class JobsCollector(Collector):
    """Reads jobs by status, steps/s of running jobs and queue depth at scrape time; never raises."""

    def __init__(
        self,
        database_url: Callable[[], str],
        broker_url: Callable[[], str],
        queues: Callable[[], Sequence[str]],
        transport_options: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self._database_url = database_url
        self._broker_url = broker_url
        self._queues = queues
        self._transport_options = transport_options
        self._errors = dict.fromkeys(("database", "broker"), 0)

    def describe(self) -> Iterable[Metric]:
        # Empty: describing would run a scrape at registration time (auto_describe) against the database.
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            # The app's own sessions: same pool, and SQLite gets its WAL and busy-timeout pragmas.
            with sessionmaker_for(self._database_url())() as session:
                counts = job_stats.job_counts(session)
                running = job_stats.running_jobs(session)
        except Exception as exc:
            self._errors["database"] += 1
            log.warning("metrics: cannot read jobs from the database: %s", exc)
        else:
            jobs = GaugeMetricFamily("rnnlab_jobs", "Jobs by status.", labels=["status"])
            for status, n in sorted(counts.items()):
                jobs.add_metric([status], n)
            yield jobs
            # One series per running job only: finished jobs drop out, so the label set stays small.
            labels = ["job_id"]
            speed = GaugeMetricFamily(
                "rnnlab_training_steps_per_second", "Steps per second of running jobs.", labels=labels
            )
            step = GaugeMetricFamily("rnnlab_training_step", "Current step of running jobs.", labels=labels)
            for job_id, current, rate in running:
                step.add_metric([str(job_id)], current)
                if rate is not None:
                    speed.add_metric([str(job_id)], rate)
            yield speed
            yield step

        try:
            # The CPU and the GPU workers' queues (app/services/routing.py).
            depths = {
                q: queue_depth(self._broker_url(), q, self._transport_options()) for q in self._queues()
            }
        except Exception as exc:
            self._errors["broker"] += 1
            log.warning("metrics: cannot read the queue depth from the broker: %s", exc)
        else:
            gauge = GaugeMetricFamily(
                "rnnlab_queue_depth", "Messages waiting in the queue.", labels=["queue"]
            )
            for queue, depth in depths.items():
                gauge.add_metric([queue], depth)
            yield gauge

        errors = CounterMetricFamily(
            "rnnlab_scrape_errors", "Scrapes that could not read a source.", labels=["source"]
        )
        for source, n in sorted(self._errors.items()):
            errors.add_metric([source], n)
        yield errors
