"""The dashboard and the CSV exports on a project of 5,000 sessions.

The sessions (the last 30 days, 20 rooms, 2 to 6 participants each, some with a rejoin) are
written straight into the tables as the ingest path would leave them. Then wrk (core 1, one
connection as one person's browser, and the overview also with two; `--latency`) asks
`roomlog serve` (core 0), signed in with a dashboard cookie, for: `/health` (the floor), the
overview, the sessions list, a sessions page 90% deep, and a session's page; and one client
downloads `GET /v1/meetings.csv` (every session) and the attendance of 200 sessions. Prints
p50, p99 and requests/s, and the CSV's rows/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec

from benchmarks.ingest import make_key, serve, stop
from benchmarks.reads import latency
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import session_id

PORT = 8730
ROOMS = 20


def populate(path: Path, count: int, now: int) -> list[str]:
    """`count` sessions of project 1 over the 30 days before `now`; their ids, newest first."""
    rnd = random.Random(5)
    connection = sqlite3.connect(path)
    encode = msgspec.msgpack.encode
    span = 30 * 86_400 * MICROS
    starts = sorted((now - rnd.randrange(3600 * MICROS, span) for _ in range(count)), reverse=True)
    made: list[tuple[str, str, int]] = []

    def rows() -> Iterator[tuple[object, ...]]:
        for n, start in enumerate(starts):
            room = f"room-{n % ROOMS:02d}"
            length = rnd.randrange(300, 3600) * MICROS
            people: list[list[object]] = []
            attended = 0
            for k in range(rnd.randint(2, 6)):
                join = start + k * rnd.randrange(0, 60) * MICROS
                if rnd.random() < 0.2:  # a rejoin: two presences
                    middle = join + (start + length - join) // 2
                    people.append([f"p{n}-{k}", None, f"Person {k}", join, middle])
                    attended += middle - join
                    join = middle + 5 * MICROS
                people.append([f"p{n}-{k}", None, f"Person {k}", join, start + length])
                attended += start + length - join
            sid = session_id("default", room, start)
            made.append((sid, room, start))
            distinct = len({p[0] for p in people})
            yield (
                1,
                sid,
                room,
                start,
                start + length,
                distinct,
                distinct,
                encode(people),
                attended,
            )

    connection.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    connection.executemany(
        "INSERT INTO rooms (project_id, name, state, due_at, occupancy, presence, session_count)"
        " VALUES (1, ?, x'', NULL, 0, x'', ?)",
        [(f"room-{r:02d}", sum(1 for m in made if m[1] == f"room-{r:02d}")) for r in range(ROOMS)],
    )
    connection.commit()
    connection.close()
    return [m[0] for m in sorted(made, key=lambda m: (m[2], m[1]), reverse=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=5_000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "roomlog.db"
        url = f"sqlite:///{path}"
        key = make_key(url)
        ids = populate(path, args.sessions, time.time_ns() // 1000)
        print(f"{len(ids):,} sessions over the last 30 days in {ROOMS} rooms")
        base = f"http://127.0.0.1:{PORT}"
        server = serve(
            [sys.executable, "-m", "roomlog", "serve", "--database-url", url, "--port", str(PORT)],
            f"{base}/health",
            Path(scratch) / "serve.log",
        )
        results = []
        try:
            signed = httpx.post(f"{base}/sign-in", data={"key": key, "next": "/"})
            cookie = signed.cookies.get("roomlog_session", "")
            assert cookie, "signing in gave no cookie"
            header = f"Cookie: roomlog_session={cookie}"
            deep = ids[len(ids) * 9 // 10]
            for label, target, connections in (
                ("GET /health (floor)", "/health", 1),
                ("overview /", "/", 1),
                ("overview /, 2 at once", "/", 2),
                ("sessions, first page", "/sessions", 1),
                ("sessions, page 90% deep", f"/sessions?after={deep}", 1),
                ("a session's page", f"/sessions/{ids[len(ids) // 2]}", 1),
            ):
                p50, p99, rate = latency(base + target, key, args.seconds, header, connections)
                results.append((label, p50, p99, rate))
            client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)
            started = time.perf_counter()
            exported = client.get(f"{base}/v1/meetings.csv")
            took = time.perf_counter() - started
            lines = exported.text.count("\n") - 1
            assert exported.status_code == 200 and lines == len(ids), exported.text[:200]
            started = time.perf_counter()
            for sid in ids[:200]:
                client.get(f"{base}/v1/meetings/{sid}/attendance.csv").raise_for_status()
            attendance = (time.perf_counter() - started) / 200
        finally:
            stop(server)
    for label, p50, p99, rate in results:
        print(f"{label:<26} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rate:7,.0f} req/s")
    print(
        f"GET /v1/meetings.csv: {lines:,} rows in {took * 1000:.0f} ms ({lines / took:,.0f} rows/s)"
    )
    print(f"GET /v1/meetings/{{id}}/attendance.csv: {attendance * 1000:.2f} ms each (one client)")


if __name__ == "__main__":
    main()
