"""The service's Prometheus metrics (docs/OPERATIONS.md lists them).

Counters and histograms are counted where things happen, in whichever process they happen:
`roomlog serve` runs prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set
before this module is imported), so that its workers and applier processes add up in one
scrape. What the database knows better than any one process (how far behind each partition
is, the ongoing sessions, the webhook events waiting) is read from it when scraped, so every
server of a deployment reports the same, true figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from roomlog.domain.events import MICROS
from roomlog.store.db import Database
from roomlog.store.schema import outbox, partitions, pending, projects, sessions

# The `_created` series of every counter and histogram double the page for little use.
disable_created_metrics()  # type: ignore[no-untyped-call]

ENV_DIRECTORY: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

EVENTS = Counter(
    "roomlog_events",
    "Events received, by what became of them (accepted, duplicate, rejected) and their source "
    "(native: POST /v1/events and snapshots; else the provider's webhook)",
    ["outcome", "source"],
)
INGEST_SECONDS = Histogram(
    "roomlog_ingest_request_seconds",
    "Time to answer a write request (events, provider webhooks, snapshots), by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS = Counter(
    "roomlog_http_requests",
    "Requests answered, by method, route and status",
    ["method", "route", "status"],
)
APPLIED = Counter("roomlog_events_applied", "Events applied to sessions behind the log")
REBUILD_EVENTS = Counter(
    "roomlog_rebuild_events",
    "Events read back to re-derive rooms: late events, whole-room and project rebuilds",
)
DELIVERIES = Counter(
    "roomlog_webhook_deliveries",
    "Webhook delivery attempts, by result (delivered, failed: retried later, gave_up)",
    ["result"],
)
PARTITIONS_HELD = Gauge(
    "roomlog_partitions_held",
    "Partitions whose events this server's appliers apply",
    multiprocess_mode="livesum",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(ENV_DIRECTORY))


def count_events(source: str, accepted: int, duplicates: int, rejected: int) -> None:
    for outcome, count in (("accepted", accepted), ("duplicate", duplicates)):
        if count:
            EVENTS.labels(outcome, source).inc(count)
    if rejected:
        EVENTS.labels("rejected", source).inc(rejected)


def process_ended(pid: int) -> None:
    """Drop the gauges of a process that has ended (its counters stay counted)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class DatabaseFigures(Collector):
    """What the database says at scrape time, the same from every server."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterable[Metric]:
        now = time.time_ns() // 1000
        with self.database.engine.connect() as connection:
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
