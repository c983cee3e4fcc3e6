"""The applier's own rate: events applied per second from a backlog, on SQLite and on
PostgreSQL, with nothing else running.

A backlog of `--batches` batches of 1,000 events (500 short visits, each batch in 500 rooms
of 20,000, as `benchmarks.late` posts them) is appended as the request path appends it,
then applied partition by partition as an applier does (`apply_pending`), timed. Lag at
half the maximum ingest rate stays bounded only if this rate is above half of ingest's
(`benchmarks.late` measures that, end to end).

`--groups N` measures the other end: single events as a server receives them, in groups of
15 (what a writer commits together under 32 concurrent clients) from the ingest benchmark's
200-room history, each group appended and then applied, N groups timed: a transaction's
fixed cost, spread over few events.

`--aging SECONDS` measures rooms as they age: 2,000 rooms, each with a visit of 1 ms about
every 1.7 s (500 visits a batch, four batches between two rounds of the applier, times moved
on as a live deployment's would be), for SECONDS of simulated time; it prints the applier's
CPU per event (and the collector's part of it) for each 100 s. The late window is 600 s, so
the rooms settle for the first time about 600 s in; between settles a room holds more and
more events, and its reads must not cost more for it.

Needs PostgreSQL at $ROOMLOG_BENCH_POSTGRES_URL for its half (default
postgresql://postgres@127.0.0.1:5432/test; a fresh schema is made and dropped).
"""

from __future__ import annotations

import argparse
import gc
import platform
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import psycopg

from benchmarks.ingest import POSTGRES, history
from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.ingest.native import parse_item
from roomlog.store.behind import apply_pending
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import ensure_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from roomlog.workers import collector


def batch(n: int, at: float) -> list[tuple[int, PresenceEvent]]:
    tag = f"b{n}"
    found = []
    for k in range(1000):
        stamp = int((at + (k % 2) * 0.001) * MICROS)
        room, person = f"busy-{n % 40}-{k // 2}", f"{tag}-{k // 2}"
        event = PresenceEvent(f"{tag}-{k}", LEFT if k % 2 else JOINED, room, person, stamp)
        found.append((k, event))
    return found


def run(label: str, url: str, batches: int) -> None:
    database = open_database(url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "bench")
    store = Store(database, Settings())
    now = time.time_ns() // 1000
    began = time.perf_counter()
    for n in range(batches):
        store.ingest([Submission(project, batch(n, now / MICROS - 60))], now, behind=True)
    appended = time.perf_counter() - began
    began, cpu = time.perf_counter(), time.process_time()
    applied = 0
    with store.holding():
        for part in range(store.parts or 16):
            while taken := apply_pending(store, part, None, now, now):
                applied += taken
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    events = batches * 1000
    print(
        f"{label}: {events:,} events appended at {events / appended:,.0f}/s, applied at "
        f"{events / took:,.0f}/s ({applied} pending rows); the applier's own CPU: "
        f"{cpu / events * 1e6:.1f} µs an event"
    )
    database.dispose()


def small_groups(label: str, url: str, groups: int, size: int = 15) -> None:
    """Groups of `size` single events appended, then applied at once, `groups` times."""
    database = open_database(url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "bench")
    store = Store(database, Settings())
    warm = 300
    lines = history((warm + groups) * size, f"g{uuid.uuid4().hex[:6]}", 200)
    events = [parse_item(msgspec.json.encode(line)) for line in lines]
    now = time.time_ns() // 1000

    def step(first: int) -> None:
        group = [e for e in events[first : first + size] if isinstance(e, PresenceEvent)]
        store.ingest([Submission(project, list(enumerate(group)))], now, behind=True)
        for part in range(store.parts or 16):
            apply_pending(store, part, None, now, now)

    with store.holding():
        for n in range(warm):
            step(n * size)
        began, cpu = time.perf_counter(), time.process_time()
        for n in range(warm, warm + groups):
            step(n * size)
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
    count = groups * size
    print(
        f"{label}: {count:,} single events in groups of {size}, appended and applied at "
        f"{count / took:,.0f}/s; CPU {cpu / count * 1e6:.0f} µs an event"
    )
    database.dispose()


def aging(label: str, url: str, seconds: float, rooms: int = 2_000, visits: int = 500) -> None:
    """Short visits to `rooms` rooms for `seconds` of simulated time, applied as they come;
    the applier's CPU per event for each 100 s."""
    database = open_database(url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "bench")
    store = Store(database, Settings())
    keeper = collector.Keeper()
    collecting = [0.0, 0.0]  # the collector's CPU time in all, and when its pass began

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.process_time()
        else:
            collecting[0] += time.process_time() - collecting[1]

    gc.callbacks.append(collected)
    step = visits / (rooms / 1.7)  # simulated seconds a batch covers
    began = time.time() - seconds - 5
    simulated, visit, number, report = 0.0, 0, 0, 100.0
    cpu = collector_cpu = took = 0.0  # the applier's CPU, the collector's, wall-clock time
    events = 0
    try:
        with store.holding():
            while simulated < seconds:
                for _ in range(4):
                    at = began + simulated
                    found: list[tuple[int, PresenceEvent]] = []
                    for v in range(visits):
                        room, person = f"room-{visit % rooms}", f"p{visit}"
                        stamp = int(at * MICROS) + v
                        found.append(
                            (2 * v, PresenceEvent(f"a{number}-{v}", JOINED, room, person, stamp))
                        )
                        found.append(
                            (
                                2 * v + 1,
                                PresenceEvent(f"a{number}-{v}b", LEFT, room, person, stamp + 1000),
                            )
                        )
                        visit += 1
                    number += 1
                    now = int((at + 1) * MICROS)
                    store.ingest([Submission(project, found)], now, behind=True)
                    simulated += step
                start, gc_start, wall = time.process_time(), collecting[0], time.perf_counter()
                for part in range(store.parts or 16):
                    while apply_pending(store, part, None, now, now):
                        pass
                keeper.worked()
                cpu += time.process_time() - start
                took += time.perf_counter() - wall
                collector_cpu += collecting[0] - gc_start
                events += 4 * visits * 2
                if simulated >= report:
                    print(
                        f"{label}, rooms {simulated:4.0f} s old: the applier's CPU "
                        f"{cpu / events * 1e6:5.1f} µs an event (the collector's part: "
                        f"{collector_cpu / events * 1e6:4.1f}); applied at {events / took:,.0f}/s",
                        flush=True,
                    )
                    cpu = collector_cpu = took = 0.0
                    events = 0
                    report += 100
    finally:
        gc.callbacks.remove(collected)
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--groups", type=int, default=0, help="measure N small groups instead of batches"
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="leave Python's collector at its default pace (the applier process sets its own)",
    )
    parser.add_argument(
        "--aging",
        type=float,
        default=0,
        help="measure rooms aging for this many simulated seconds instead of batches",
    )
    args = parser.parse_args()
    if not args.default_gc:
        collector.pace()
    print(f"{platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as folder:
        if "sqlite" in args.databases:
            sqlite = f"sqlite:///{Path(folder) / 'applier.db'}"
            if args.aging:
                aging("SQLite", sqlite, args.aging)
            elif args.groups:
                small_groups("SQLite", sqlite, args.groups)
            else:
                run("SQLite", sqlite, args.batches)
    if "postgresql" in args.databases:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        try:
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
            if args.aging:
                aging("PostgreSQL", url, args.aging)
            elif args.groups:
                small_groups("PostgreSQL", url, args.groups)
            else:
                run("PostgreSQL", url, args.batches)
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
