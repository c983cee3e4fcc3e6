"""Late events into a big room: what one costs, and what a flood of them does to another
project's ingest, on SQLite and on PostgreSQL, in one run.

A project `big` holds one room with `--events` events (default 100,000: ten people coming and
going over days), posted in order as they happen, so the room settles behind them and keeps
checkpoints. Then:
1. Cost: one late event (a join and its leave, stamped somewhere in the room's past, older
   than the late window) is posted with `wait=applied`; the request time is the cost of
   re-deriving the room from the newest checkpoint before it. Against it, in the same run:
   the room rebuilt from its whole event log (what any late event cost before checkpoints),
   timed in-process.
2. Isolation: a second project posts single events, one client, one at a time; its p50 and
   p99 alone, then while two clients flood `big` with late events. The ratio of the p50s is
   what the flood costs the other tenant. Then the same with two clients flooding `big` with
   on-time visits (1 ms, in 1,000 rooms, next to nothing for the applier): what sharing the
   server's ingest costs the other tenant whatever the events, and so the late events' own
   part of the first ratio.
3. Lag: from the acknowledgement of a single event (`wait=logged`, the default) to the
   moment `Roomlog-Applied-Through` passes it, p50 and p99: idle, and while two clients post
   batches of 1,000 events (short visits in 20,000 rooms) at half the rate they reach when
   posting as fast as they are answered, and at a fixed rate (`--fixed-rate`, default
   20,000/s), which compares across runs as half the maximum does not.

Each is measured with the applier in a process of its own and in a thread of the server
(`--appliers`), on SQLite and on PostgreSQL.

Needs PostgreSQL at $ROOMLOG_BENCH_POSTGRES_URL for its half (default
postgresql://postgres@127.0.0.1:5432/test; a fresh schema is made and dropped).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import psycopg

from benchmarks.ingest import POSTGRES, serve_roomlog, stop
from roomlog.domain.events import MICROS, micros_from_rfc3339
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import create_key, ensure_project, find_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings

PEOPLE = 10
STEP = 2.0  # seconds between two events of the room
LATE_WINDOW = 600


def keys(database_url: str) -> tuple[str, str]:
    database = open_database(database_url)
    migrate(database)
    with database.engine.begin() as connection:
        big, _ = ensure_project(connection, "big")
        other, _ = ensure_project(connection, "other")
        found = create_key(connection, big), create_key(connection, other)
    database.dispose()
    return found


def room_history(count: int, end: float) -> list[bytes]:
    """`count` events of one room ending at `end`: ten people, each in for about 40 s and out
    for about 20, so the room is never empty for long and sessions run for hours."""
    rnd = random.Random(7)
    start = end - count * STEP
    bodies: list[dict[str, object]] = []
    present: set[int] = set()
    for n in range(count):
        person = rnd.randrange(PEOPLE)
        kind = "participant.left" if person in present else "participant.joined"
        present ^= {person}
        bodies.append(
            {
                "id": f"h{n}",
                "type": kind,
                "room": "huge",
                "participant_id": f"p{person}",
                "at": round(start + n * STEP, 3),
            }
        )
    encode = msgspec.json.encode
    return [encode(bodies[i : i + 1000]) for i in range(0, len(bodies), 1000)]


def post(client: httpx.Client, key: str, body: bytes, wait: str = "logged") -> float:
    began = time.perf_counter()
    answer = client.post(
        f"/v1/events?wait={wait}",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    took = time.perf_counter() - began
    if answer.status_code != 200:
        raise RuntimeError(answer.text)
    return took


def late_pair(tag: str, at: float, room: str = "huge", stay: float = 120) -> bytes:
    return msgspec.json.encode(
        [
            {"id": f"{tag}-j", "type": "participant.joined", "room": room,
             "participant_id": f"late-{tag}", "at": at},
            {"id": f"{tag}-l", "type": "participant.left", "room": room,
             "participant_id": f"late-{tag}", "at": at + stay},
        ]
    )  # fmt: skip


def on_time_pair(tag: str, n: int) -> bytes:
    """A visit of 1 ms stamped now, in one of 1,000 rooms: a request like a late pair's that
    costs the applier next to nothing."""
    return late_pair(tag, time.time(), f"on-time-{n % 1000}", 0.001)


def single(tag: str, n: int) -> bytes:
    kind = "participant.joined" if n % 2 == 0 else "participant.left"
    return msgspec.json.encode(
        {"id": f"{tag}-{n}", "type": kind, "room": f"r{n % 50}",
         "participant_id": f"q{(n // 2) % 7}", "at": time.time()}
    )  # fmt: skip


def latencies(url: str, key: str, count: int, tag: str) -> list[float]:
    with httpx.Client(base_url=url, timeout=60) as client:
        return [post(client, key, single(tag, n)) for n in range(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    label: str,
    database_url: str,
    events: int,
    folder: Path,
    port: int,
    appliers: str,
    fixed_rate: float = 20_000.0,
    apply_threads: int | None = None,
) -> None:
    big_key, other_key = keys(database_url)
    log = folder / f"{label}.log"
    extra = () if apply_threads is None else ("--apply-threads", str(apply_threads))
    server = serve_roomlog(database_url, port, log, appliers, pin=False, extra=extra)
    label = f"{label}, applier in a {appliers}" + (
        "" if apply_threads is None else f" ({apply_threads} apply threads)"
    )
    url = f"http://127.0.0.1:{port}"
    end = time.time() - 3600
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            began = time.perf_counter()
            for body in room_history(events, end):
                post(client, big_key, body)
            took = time.perf_counter() - began
            print(f"{label}: {events:,} events of one room posted in {took:.1f} s")
            start = end - events * STEP
            rnd = random.Random(3)
            costs = [
                post(
                    client,
                    big_key,
                    late_pair(f"c{n}", rnd.uniform(start + 600, end - 2 * LATE_WINDOW)),
                    "applied",  # answered once applied: the request's time is the cost
                )
                for n in range(5)
            ]
        database = open_database(database_url)
        with database.engine.connect() as connection:
            project = find_project(connection, "big")
        assert project is not None
        store = Store(database, Settings())
        whole = []
        for _ in range(2):
            began = time.perf_counter()
            store.rebuild(project, time.time_ns() // 1000)
            whole.append(time.perf_counter() - began)
        database.dispose()
        print(
            f"{label}: one late event, re-derived from a checkpoint: median "
            f"{statistics.median(costs) * 1000:.0f} ms (of {len(costs)}); the room rebuilt from "
            f"its whole log: {min(whole) * 1000:.0f} ms"
        )

        alone = latencies(url, other_key, 300, f"a{uuid.uuid4().hex[:6]}")

        def flooded_by(late: bool) -> tuple[list[float], int]:
            """The other project's latencies while two clients post pairs into `big` as fast
            as they are answered: late ones, or (the same requests' cost to the server's
            ingest, without the late events' to the applier) short visits stamped now."""
            stop_flood = threading.Event()
            count: list[int] = [0]

            def flood(worker: int) -> None:
                rnd = random.Random(worker)
                with httpx.Client(base_url=url, timeout=120) as client:
                    n = 0
                    while not stop_flood.is_set():
                        tag = f"f{worker}-{n}-{uuid.uuid4().hex[:4]}"
                        at = rnd.uniform(start + 600, end - 2 * LATE_WINDOW)
                        post(client, big_key, late_pair(tag, at) if late else on_time_pair(tag, n))
                        n += 1
                        count[0] += 1

            threads = [threading.Thread(target=flood, args=(w,)) for w in range(2)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            during = latencies(url, other_key, 200, f"d{uuid.uuid4().hex[:6]}")
            stop_flood.set()
            for thread in threads:
                thread.join()
            return during, count[0]

        during, flooded = flooded_by(late=True)
        p50a, p50d = percentile(alone, 0.5), percentile(during, 0.5)
        print(
            f"{label}: the other project's single-event ingest, p50 / p99: alone "
            f"{p50a * 1000:.1f} / {percentile(alone, 0.99) * 1000:.1f} ms; during a flood of "
            f"late events into `big` ({flooded} posted) {p50d * 1000:.1f} / "
            f"{percentile(during, 0.99) * 1000:.1f} ms: p50 x{p50d / p50a:.2f}"
        )
        drained = caught_up(url)
        print(f"{label}: the flood's backlog applied {drained:.1f} s after it stopped")
        on_time, posted = flooded_by(late=False)
        p50o = percentile(on_time, 0.5)
        print(
            f"{label}: the same, during a flood of on-time visits into `big` ({posted} posted),"
            f" what sharing the server costs without late events: {p50o * 1000:.1f} / "
            f"{percentile(on_time, 0.99) * 1000:.1f} ms: p50 x{p50o / p50a:.2f}; the late"
            f" events' own part x{p50d / p50o:.2f}"
        )
        caught_up(url)
        idle = lags(url, other_key, 100, f"l{uuid.uuid4().hex[:6]}")
        # The maximum batch ingest rate, and the rate the events were applied at (until the
        # backlog it left was applied); then half the ingest rate while the lag is measured.
        began = time.perf_counter()
        most = loaded_rate(url, other_key, 0.0, 5.0, lambda: None)
        posting = time.perf_counter() - began
        drained = caught_up(url, MAX_WAIT)
        applied = most * posting / (posting + drained)
        print(
            f"{label}: batches of short visits in 20,000 rooms: acknowledged at {most:,.0f}"
            f" events/s, applied at {applied:,.0f} events/s"
            + (
                f" (the backlog was still applying after {MAX_WAIT:.0f} s)"
                if drained >= MAX_WAIT
                else ""
            )
        )
        loaded: list[float] = []
        half = loaded_rate(
            url,
            other_key,
            most / 2,
            0.0,
            lambda: loaded.extend(lags(url, other_key, 40, f"m{uuid.uuid4().hex[:6]}")),
        )
        caught_up(url, MAX_WAIT)
        # Half of the maximum moves with every gain in ingest: the same fixed rate too, so
        # that runs on different days (and placements) compare.
        fixed: list[float] = []
        steady = loaded_rate(
            url,
            other_key,
            fixed_rate,
            0.0,
            lambda: fixed.extend(lags(url, other_key, 40, f"f{uuid.uuid4().hex[:6]}")),
        )
        caught_up(url, MAX_WAIT)
        print(
            f"{label}: acknowledgement to applied at a fixed {steady:,.0f} events/s, p50 / p99: "
            f"{percentile(fixed, 0.5) * 1000:.1f} / {percentile(fixed, 0.99) * 1000:.1f} ms"
        )
        print(
            f"{label}: acknowledgement to applied, p50 / p99: idle "
            f"{percentile(idle, 0.5) * 1000:.1f} / {percentile(idle, 0.99) * 1000:.1f} ms; "
            f"at half the maximum batch rate ({half:,.0f} of {most:,.0f} events/s) "
            f"{percentile(loaded, 0.5) * 1000:.1f} / {percentile(loaded, 0.99) * 1000:.1f} ms"
            f" (a wait is cut at {MAX_WAIT:.0f} s)"
        )
    except Exception:
        print(f"{label}: failed; the server's log ends:\n{log.read_text()[-3000:]}")
        raise
    finally:
        stop(server)


def loaded_rate(
    url: str, key: str, rate: float, seconds: float, meanwhile: Callable[[], None]
) -> float:
    """Events/s that two clients posting batches of 1,000 (500 short visits in 20,000 rooms)
    reached, at `rate` (0: as fast as they are answered), for `seconds` or for as long as
    `meanwhile()` runs."""
    done = threading.Event()
    posted = [0]

    def busy(worker: int) -> None:
        began = time.perf_counter()
        with httpx.Client(base_url=url, timeout=120) as client:
            n = 0
            while not done.is_set():
                # 500 short visits (a join and its leave), each batch in 500 rooms of 20,000.
                tag, at = f"b{worker}-{uuid.uuid4().hex[:6]}-{n}", time.time()
                bodies = [
                    {"id": f"{tag}-{k}", "room": f"busy-{n % 40}-{k // 2}",
                     "type": "participant.left" if k % 2 else "participant.joined",
                     "participant_id": f"{tag}-{k // 2}", "at": at + (k % 2) * 0.001}
                    for k in range(1000)
                ]  # fmt: skip
                post(client, key, msgspec.json.encode(bodies))
                n += 1
                posted[0] += 1000
                if rate:  # each client posts half of `rate`
                    ahead = began + n * 1000 / (rate / 2) - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)

    threads = [threading.Thread(target=busy, args=(w,)) for w in range(2)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(max(seconds, 1.0))
    meanwhile()
    done.set()
    for thread in threads:
        thread.join()
    return posted[0] / (time.perf_counter() - began)


def caught_up(url: str, most: float = 600.0) -> float:
    """Seconds until `Roomlog-Applied-Through` passes the moment of the call (at most
    `most`)."""
    began, since = time.perf_counter(), int(time.time() * MICROS)
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.perf_counter() - began < most:
            header = client.get("/health").headers.get("roomlog-applied-through", "")
            if header and micros_from_rfc3339(header) >= since // 1000 * 1000:
                break
            time.sleep(0.05)
    return min(most, time.perf_counter() - began)


MAX_WAIT = 10.0  # seconds a lag measurement waits at most


def lags(url: str, key: str, count: int, tag: str) -> list[float]:
    """Seconds from each single event's acknowledgement until the applied-through header
    passes the instant it was posted."""
    found = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(count):
            posted = time.time()
            post(client, key, single(tag, n))
            acknowledged = time.perf_counter()
            while time.perf_counter() - acknowledged < MAX_WAIT:
                header = client.get("/health").headers.get("roomlog-applied-through", "")
                if header and micros_from_rfc3339(header) >= int(posted * MICROS) // 1000 * 1000:
                    break
                time.sleep(0.001)
            found.append(min(MAX_WAIT, time.perf_counter() - acknowledged))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--fixed-rate",
        type=float,
        default=20_000.0,
        help="events/s of batches at which lag is measured besides half the maximum",
    )
    parser.add_argument(
        "--appliers",
        choices=("thread", "process"),
        nargs="+",
        default=["thread", "process"],
        help="where the server applies events (`roomlog serve --appliers`); each is measured",
    )
    parser.add_argument(
        "--apply-threads",
        type=int,
        help="the applier's threads (`roomlog serve --apply-threads`; default: the server's)",
    )
    parser.add_argument(
        "--databases", choices=("sqlite", "postgresql"), nargs="+", default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for appliers in args.appliers if "sqlite" in args.databases else ():
            sqlite = f"sqlite:///{folder / f'late-{appliers}.db'}"
            run(
                "SQLite",
                sqlite,
                args.events,
                folder,
                8431,
                appliers,
                args.fixed_rate,
                args.apply_threads,
            )
        if "postgresql" not in args.databases:
            return
        schema = f"late_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {schema}")
        except psycopg.OperationalError as exc:
            print(f"PostgreSQL: skipped, cannot connect to {POSTGRES}: {exc}", file=sys.stderr)
            return
        for appliers in args.appliers:
            try:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
                run(
                    "PostgreSQL",
                    url,
                    args.events,
                    folder,
                    8432,
                    appliers,
                    args.fixed_rate,
                    args.apply_threads,
                )
            finally:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
