"""`GET /v1/attendance` against the size of the history: its cost should follow the sessions a
query covers, not the sessions stored.

Stores `--sessions` sessions (default 1,000,000) directly in an SQLite file, in 2,000 rooms over
a year, 2 to 6 people each from 20,000 users, and a small history of 10,000 sessions beside
it; then times, in this process through the app (no network), the same queries on both:
one room over one week, and every room over one day.

    python -m benchmarks.attendance [--sessions 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import Attendance, MeetingSession, session_id
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.projects import create_key, ensure_project
from roomlog.store.rooms import encode_participants

EPOCH = 1_767_225_600  # 2026-01-01
YEAR = 365 * 86_400
ROOMS = 2_000
ROWS = 20_000


def fill(database: Database, count: int, seed: int) -> str:
    """Store `count` sessions; the key of their project."""
    rnd = random.Random(seed)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
        key = create_key(connection, project)
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for first in range(0, count, ROWS):
            rows = []
            for _ in range(min(ROWS, count - first)):
                room = f"room-{rnd.randrange(ROOMS):04d}"
                start = (EPOCH + rnd.randrange(YEAR)) * MICROS
                length = rnd.randrange(300, 5_400) * MICROS
                people = tuple(
                    Attendance(
                        f"p{rnd.randrange(10**9)}",
                        user,
                        user.title(),
                        start + rnd.randrange(60) * MICROS,
                        start + length,
                    )
                    for user in sorted(
                        {f"user-{rnd.randrange(20_000)}" for _ in range(rnd.randint(2, 6))}
                    )
                )
                session = MeetingSession(
                    session_id("default", room, start), room, start, start + length, 0, people
                )
                rows.append(
                    (
                        project.id,
                        session.id,
                        room,
                        start,
                        start + length,
                        len(people),
                        len(people),
                        encode_participants(session),
                        0,
                    )
                )
            cursor.executemany(
                "INSERT OR IGNORE INTO sessions (project_id, id, room, start_at, end_at,"
                " max_participants, participant_count, participants, attended)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            raw.commit()
    finally:
        raw.close()
    return key


def timed(
    client: TestClient,  # type: ignore[type-arg]
    key: str,
    params: dict[str, Any],
    repeat: int,
) -> tuple[float, int, int]:
    """The best time (s) of the query, the people it answered, the sessions it covered."""
    headers = {"Authorization": f"Bearer {key}"}
    best, people = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get("/v1/attendance", params=params, headers=headers)
        best = min(best, time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        people = answer.json()["total_count"]
    covered = client.get("/v1/meetings", params={**params, "limit": 1}, headers=headers)
    return best, people, covered.json()["total_count"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    week = {"timeframe_start": EPOCH + 180 * 86_400, "timeframe_end": EPOCH + 187 * 86_400}
    day = {"timeframe_start": EPOCH + 180 * 86_400, "timeframe_end": EPOCH + 181 * 86_400}
    queries: dict[str, dict[str, Any]] = {
        "one room, one week": {"room": "room-0042", **week},
        "every room, one day": day,
    }
    with tempfile.TemporaryDirectory() as scratch:
        results: dict[int, dict[str, tuple[float, int, int]]] = {}
        for count in (10_000, args.sessions):
            started = time.perf_counter()
            database = open_database(f"sqlite:///{Path(scratch) / f'{count}.db'}")
            key = fill(database, count, seed=count)
            print(f"stored {count:,} sessions in {time.perf_counter() - started:.1f} s")
            with TestClient(create_app(database, deliver=False)) as client:
                results[count] = {
                    name: timed(client, key, params, args.repeat)
                    for name, params in queries.items()
                }
            database.dispose()
        print(
            f"{'query':<22} {'stored':>10} {'covered':>8} {'people':>7} {'best ms':>8}"
            f" {'µs per covered session':>23}"
        )
        for name in queries:
            for count, found in results.items():
                seconds, people, covered = found[name]
                each = seconds * 1e6 / max(covered, 1)
                print(
                    f"{name:<22} {count:>10,} {covered:>8,} {people:>7,}"
                    f" {seconds * 1000:>8.1f} {each:>23.0f}"
                )


if __name__ == "__main__":
    main()
