"""Scrape-time `rnnlab_workers{queue}`: workers whose heartbeat is within the lease, from the database."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.db import sessionmaker_for
from app.services import workers

log = logging.getLogger(__name__)


class WorkersCollector(Collector):
    """Live workers by queue; a database that is down leaves the series out (JobsCollector counts it)."""

    def __init__(self, database_url: Callable[[], str], lease_seconds: Callable[[], float]) -> None:
        self._database_url = database_url
        self._lease_seconds = lease_seconds

    def describe(self) -> Iterable[Metric]:
        return []  # as JobsCollector: describing would query the database at registration

    def collect(self) -> Iterable[Metric]:
        try:
            with sessionmaker_for(self._database_url())() as session:
                live = workers.live_workers(session, lease_seconds=self._lease_seconds())
        except Exception as exc:
            log.warning("metrics: cannot read workers from the database: %s", exc)
            return
        gauge = GaugeMetricFamily(
            "rnnlab_workers", "Workers that sent a heartbeat within the lease.", labels=["queue"]
        )
        for queue, count in sorted(live.items()):
            gauge.add_metric([queue], count)
        yield gauge
