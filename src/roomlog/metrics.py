"""The service's counted Prometheus metrics (docs/OPERATIONS.md lists them).

They are counted where things happen, in whichever process they happen: `roomlog serve` runs
prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set before this module is
imported), so that its workers and applier processes add up in one scrape. What the database
knows better than any one process is read from it when scraped (`roomlog.api.scrape`).
"""

from __future__ import annotations

import os
from typing import Final, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, multiprocess

# The `_created` series of every counter and histogram double the page for little use.
disable_created_metrics()  # type: ignore[no-untyped-call]

ENV_DIRECTORY: Final = "PROMETHEUS_MULTIPROC_DIR"

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
VACUUMS = Counter(
    "roomlog_vacuums",
    "Vacuums of a PostgreSQL table the appliers rewrite, run by the service once its dead rows "
    "piled up, by table",
    ["table"],
)
ANALYSES = Counter(
    "roomlog_analyses",
    "ANALYZEs of a PostgreSQL table the reads plan on, run by the service once a tenth of it "
    "changed, by table",
    ["table"],
)
PARTITIONS_HELD = Gauge(
    "roomlog_partitions_held",
    "Partitions whose events this server's appliers apply",
    multiprocess_mode="livesum",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(ENV_DIRECTORY))


# Each metric's children by their labels, looked up once: the request path counts every
# request, and `labels()` validates and locks on each call. (Labels are routes' templates,
# methods, statuses and sources: a bounded set.)
_Labelled = TypeVar("_Labelled", Counter, Histogram)
_children: dict[tuple[Counter | Histogram, tuple[str, ...]], Counter | Histogram] = {}


def labelled(metric: _Labelled, *labels: str) -> _Labelled:
    """`metric.labels(*labels)`, kept."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return cast("_Labelled", found)


def count_events(source: str, accepted: int, duplicates: int, rejected: int) -> None:
    for outcome, count in (("accepted", accepted), ("duplicate", duplicates)):
        if count:
            labelled(EVENTS, outcome, source).inc(count)
    if rejected:
        labelled(EVENTS, "rejected", source).inc(rejected)


def process_ended(pid: int) -> None:
    """Drop the gauges of a process that has ended (its counters stay counted)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
