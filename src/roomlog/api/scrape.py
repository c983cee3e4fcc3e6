"""What one scrape of `GET /metrics` shows: the counted metrics of every process of this
server (or of this process alone, outside `roomlog serve`), the answering process's own, and
what the database says, the same from every server: how far behind each partition is, the
partitions no one holds, the ongoing sessions, the webhook events waiting."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from roomlog.domain.events import MICROS
from roomlog.metrics import multiprocess_mode
from roomlog.store.db import Database
from roomlog.store.schema import outbox, partitions, pending, projects, sessions

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class DatabaseFigures(Collector):
    """What the database says at scrape time, the same from every server."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterable[Metric]:
        now = time.time_ns() // 1000
        with self.database.reader.connect() as connection:
            parts = connection.execute(
                select(partitions.c.part, partitions.c.lease_until).order_by(partitions.c.part)
            ).all()
            oldest: dict[int, int] = {
                part: since
                for part, since in connection.execute(
                    select(pending.c.part, func.min(pending.c.received_at)).group_by(pending.c.part)
                )
            }
            ongoing = connection.execute(
                select(projects.c.name, func.count())
                .select_from(sessions.join(projects, projects.c.id == sessions.c.project_id))
                .where(sessions.c.end_at.is_(None))
                .group_by(projects.c.name)
            ).all()
            waiting = connection.execute(
                select(func.count()).where(outbox.c.status == "pending")
            ).scalar_one()
        lag = GaugeMetricFamily(
            "roomlog_apply_lag_seconds",
            "How long the oldest acknowledged event not yet applied has waited, by partition "
            "(0: all applied)",
            labels=["partition"],
        )
        for part, _ in parts:
            since = oldest.get(part)
            lag.add_metric([str(part)], 0.0 if since is None else max(0, now - since) / MICROS)
        yield lag
        unheld = GaugeMetricFamily(
            "roomlog_partitions_unheld",
            "Partitions no live applier holds a lease on (their events wait until one takes them)",
        )
        unheld.add_metric([], sum(1 for _, until in parts if until <= now))
        yield unheld
        sessions_now = GaugeMetricFamily(
            "roomlog_sessions_ongoing", "Meeting sessions not ended, by project", labels=["project"]
        )
        for name, count in ongoing:
            sessions_now.add_metric([name], count)
        yield sessions_now
        yield GaugeMetricFamily(
            "roomlog_outbox_pending",
            "Webhook events waiting to be delivered (due or retrying)",
            value=waiting,
        )


class Scrape(Collector):
    """Every metric of one scrape: this process's (or, in multiprocess mode, every
    process's) counted ones, the answering process's own, and the database's figures."""

    def __init__(self, database: Database) -> None:
        self.database_figures = DatabaseFigures(database)

    def collect(self) -> Iterator[Metric]:
        if multiprocess_mode():
            counted = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
            yield from counted.collect()  # type: ignore[no-untyped-call]
            yield from ProcessCollector(registry=None).collect()
            yield from PlatformCollector(registry=None).collect()
        else:
            yield from REGISTRY.collect()
        yield from self.database_figures.collect()


def exposition(database: Database) -> bytes:
    """The metrics page, in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Scrape(database))
    return generate_latest(registry)
