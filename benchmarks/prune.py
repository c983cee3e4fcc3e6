"""Retention against ingest: what `roomlog prune` removes, how long it takes, and what it
does to the ingest latency of a running server, on SQLite and on PostgreSQL, in one run.

A project holds `--days` days (default 60) of meetings in `--rooms` rooms (default 100; three
meetings a room a day, of two to six people), stored as they happened so the rooms settle
and keep checkpoints. A server runs on it. One client posts single events (`wait=logged`, one
at a time) for `--seconds` seconds alone, then again while `roomlog prune --retention-days
30` runs in a process of its own. The ratio of the p50s and p99s is what pruning costs
ingest; the prune's time and the rows it removed are printed beside them.

Needs PostgreSQL at $ROOMLOG_BENCH_POSTGRES_URL for its half (default
postgresql://postgres@127.0.0.1:5432/test; a fresh schema is made and dropped).
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import psycopg

from benchmarks.ingest import POSTGRES, serve_roomlog, stop
from benchmarks.late import percentile
from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import create_key, ensure_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission

DAY = 86_400


def history(database_url: str, days: int, rooms: int) -> tuple[str, int]:
    """Store `days` days of meetings, day by day as they happen; the key and event count."""
    database = open_database(database_url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
        key = create_key(connection, project)
    store = Store(database, Settings())
    rnd = random.Random(11)
    first = int(time.time()) - days * DAY
    count = 0
    for day in range(days):
        events: list[PresenceEvent] = []
        for room in range(rooms):
            for meeting in range(3):
                start = first + day * DAY + meeting * 6 * 3600 + rnd.randrange(3600)
                for person in range(rnd.randint(2, 6)):
                    come = start + rnd.randrange(300)
                    go = come + rnd.randrange(600, 3000)
                    pid = f"d{day}m{meeting}p{person}"
                    room_name = f"room-{room}"
                    count += 2
                    events += [
                        PresenceEvent(f"e{count}", JOINED, room_name, pid, come * MICROS),
                        PresenceEvent(f"e{count + 1}", LEFT, room_name, pid, go * MICROS),
                    ]
        events.sort(key=lambda e: e.at)
        now = (first + (day + 1) * DAY) * MICROS
        store.ingest([Submission(project, list(enumerate(events)))], now)
        while store.tick(now):
            pass
    database.dispose()
    return key, count


def latencies(url: str, key: str, seconds: float, tag: str) -> list[float]:
    """Single events posted one at a time for `seconds`: each request's time."""
    found: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as client:
        n = 0
        while time.monotonic() < deadline:
            body = msgspec.json.encode(
                {"id": f"{tag}-{n}", "type": "participant.joined", "room": f"live-{n % 20}",
                 "participant_id": f"q{n}", "at": time.time()}
            )  # fmt: skip
            began = time.perf_counter()
            answer = client.post("/v1/events", content=body, headers=headers)
            found.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise RuntimeError(answer.text)
            n += 1
    return found


def run(label: str, database_url: str, args: argparse.Namespace, folder: Path) -> None:
    began = time.perf_counter()
    key, count = history(database_url, args.days, args.rooms)
    print(f"{label}: {count:,} events over {args.days} days stored in "
          f"{time.perf_counter() - began:.0f} s")  # fmt: skip
    server = serve_roomlog(database_url, 8713, folder / f"{label}.log", "process", pin=False)
    url = "http://127.0.0.1:8713"
    try:
        latencies(url, key, 1, "warm")
        alone = latencies(url, key, args.seconds, f"a{uuid.uuid4().hex[:6]}")
        done: dict[str, object] = {}

        def prune() -> None:
            started = time.perf_counter()
            done["output"] = subprocess.run(
                [sys.executable, "-m", "roomlog", "prune", "--retention-days", "30",
                 "--database-url", database_url],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            done["seconds"] = time.perf_counter() - started

        pruning = threading.Thread(target=prune)
        pruning.start()
        during = latencies(url, key, args.seconds, f"d{uuid.uuid4().hex[:6]}")
        pruning.join()
    finally:
        stop(server)
    removed = dict(line.split() for line in str(done["output"]).splitlines()[1:7])
    print(f"{label}: prune --retention-days 30 took {done['seconds']:.1f} s and removed "
          f"{removed['events']} events, {removed['sessions']} sessions, "
          f"{removed['checkpoints']} checkpoints")  # fmt: skip
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        a, d = percentile(alone, q), percentile(during, q)
        print(f"{label}: ingest {name} alone {a * 1000:.1f} ms, while pruning "
              f"{d * 1000:.1f} ms (x{d / a:.2f})")  # fmt: skip
    print(f"{label}: requests while pruning: {len(during)} (alone: {len(alone)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"{platform.node()}, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if "sqlite" in args.databases:
            run("SQLite", f"sqlite:///{folder / 'prune.db'}", args, folder)
        if "postgresql" in args.databases:
            schema = f"prune_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {schema}")
            try:
                url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
                run("PostgreSQL", url, args, folder)
            finally:
                with psycopg.connect(POSTGRES, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
