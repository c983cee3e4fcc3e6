"""Read latency of `GET /v1/meetings` with 10,000 and 1,000,000 stored sessions.

The sessions are written straight into the tables as the ingest path would leave them (a
room per 1,000 sessions, three participants each). Then wrk (core 1, two connections,
`--latency`) asks `roomlog serve` (core 0) for: `/health` (the floor: same server, no
database), a room's first page of 100, a room's page 90% deep in its history, and a page 90%
deep in the whole project's history. Prints p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from benchmarks.ingest import ROOT, make_key, stop, taskset, wait_up
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import session_id

PER_ROOM = 1_000  # every room holds this many sessions, so room pages are alike at any size
START = 1_700_000_000 * MICROS


def populate(path: Path, count: int) -> tuple[str, str, str]:
    """`count` sessions in `path`'s project 1; a room, and two cursors 90% deep."""
    connection = sqlite3.connect(path)
    rooms = max(count // PER_ROOM, 1)
    per_room = count // rooms
    encode = msgspec.msgpack.encode

    def rows() -> Iterator[tuple[object, ...]]:
        for n in range(count):
            room = f"room-{n % rooms:04d}"
            start = START + (n // rooms) * 3600 * MICROS + (n % rooms) * MICROS
            people = [
                [f"p{n}-{k}", None, f"Person {k}", start + k * MICROS, start + 1800 * MICROS]
                for k in range(3)
            ]
            yield (
                1,
                session_id("default", room, start),
                room,
                start,
                start + 1800 * MICROS,
                3,
                3,
                encode(people),
                sum((1800 - k) * MICROS for k in range(3)),
            )

    connection.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    connection.executemany(
        "INSERT INTO rooms (project_id, name, state, due_at, occupancy, presence, session_count)"
        " VALUES (1, ?, x'', NULL, 0, x'', ?)",
        [(f"room-{r:04d}", per_room) for r in range(rooms)],
    )
    connection.commit()
    middle = rooms // 2
    start = START + (per_room // 10) * 3600 * MICROS + middle * MICROS
    deep_room = session_id("default", f"room-{middle:04d}", start)
    n = count // 10
    deep_all = session_id(
        "default",
        f"room-{n % rooms:04d}",
        START + (n // rooms) * 3600 * MICROS + (n % rooms) * MICROS,
    )
    connection.close()
    return f"room-{middle:04d}", deep_room, deep_all


def latency(
    url: str, key: str, seconds: int, header: str | None = None, connections: int = 2
) -> tuple[float, float, float]:
    """p50 and p99 (ms) and requests/s of GETs of `url` with the key (or `header`)."""
    out = subprocess.run(
        [
            *taskset(1),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            header or f"Authorization: Bearer {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        sys.exit(f"errors answering {url}:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return ms("50%"), ms("99%"), rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--sizes", default="10000,1000000")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results = []
    for count in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "roomlog.db"
            url = f"sqlite:///{path}"
            key = make_key(url)
            started = time.perf_counter()
            room, deep_room, deep_all = populate(path, count)
            print(f"{count:,} sessions written in {time.perf_counter() - started:.1f} s")
            server = subprocess.Popen(
                [
                    *taskset(0),
                    sys.executable,
                    "-m",
                    "roomlog",
                    "serve",
                    "--database-url",
                    url,
                    "--port",
                    "8720",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
            try:
                wait_up("http://127.0.0.1:8720/health")
                base = "http://127.0.0.1:8720/v1/meetings?limit=100"
                for label, target in (
                    ("GET /health (floor)", "http://127.0.0.1:8720/health"),
                    ("room, first page", f"{base}&room={room}"),
                    ("room, page 90% deep", f"{base}&room={room}&starting_after={deep_room}"),
                    ("project, page 90% deep", f"{base}&starting_after={deep_all}"),
                ):
                    p50, p99, rate = latency(target, key, args.seconds)
                    results.append((count, label, p50, p99, rate))
            finally:
                stop(server)
    for count, label, p50, p99, rate in results:
        print(
            f"{count:>9,} sessions  {label:<24} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"{rate:7,.0f} req/s"
        )


if __name__ == "__main__":
    main()
