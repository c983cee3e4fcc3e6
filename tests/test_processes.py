"""Across processes: two servers writing one room at once, and a server killed mid-stream."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from roomlog.cli import main
from roomlog.domain.batch import sessionize
from roomlog.ingest.native import parse_event
from roomlog.store.db import migrate, open_database
from roomlog.store.schema import events, partitions
from roomlog.views.daily import meeting_object
from tests.fixtures import drop_postgres, fresh_postgres, make_project
from tests.servers import Server, alive, children


def recent_history(
    seed: int, rooms: int, prefix: str = "room", whole_seconds: bool = False
) -> list[dict[str, Any]]:
    """Meetings over the last half hour that have all ended: nothing depends on `now`.

    Each event also carries `joined_at`, its presence's join, which providers' leaves report;
    `whole_seconds` stamps as most providers do.
    """
    rnd = random.Random(seed)
    end = time.time() - 5
    stamp = int if whole_seconds else (lambda at: round(at, 6))
    bodies: list[dict[str, Any]] = []
    for r in range(rooms):
        room = f"{prefix}-{r}"
        clock = end - 1800 + rnd.uniform(0, 60)
        m = 0
        while clock < end - 60:
            last = clock
            for n in range(rnd.randint(1, 5)):
                pid = f"{prefix}-s{seed}-r{r}-m{m}-p{n}"
                come = clock + rnd.uniform(0, 30)
                go = min(come + rnd.uniform(5, 300), end)
                last = max(last, go)
                for kind, at in (("participant.joined", come), ("participant.left", go)):
                    bodies.append(
                        {
                            "id": f"{pid}-{kind[12:]}",
                            "type": kind,
                            "room": room,
                            "participant_id": pid,
                            "user_id": f"user-{n}",
                            "user_name": f"User {n}",
                            "at": stamp(at),
                            "joined_at": stamp(come),
                        }
                    )
            clock = last + rnd.uniform(1, 120)
            m += 1
    return bodies


def timeless(meetings: list[Any]) -> list[Any]:
    """Meetings without the durations of what is still going on, which grow as we look."""
    for meeting in meetings:
        if meeting["ongoing"]:
            del meeting["duration"]
            for person in meeting["participants"]:
                del person["duration"]
    return meetings


def expected(bodies: list[dict[str, Any]], project: str) -> list[Any]:
    parsed = [parse_event(json.dumps(b)) for b in bodies]
    now = time.time_ns() // 1000
    found = sessionize(parsed, now, tenant=project)
    return timeless([msgspec.to_builtins(meeting_object(s, now)) for s in found])


def listed(base: str, key: str) -> list[Any]:
    found: list[Any] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = httpx.get(
            f"{base}/v1/meetings", params=params, headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]
        found += page
        if len(page) < 100:
            return timeless(found)
        params["starting_after"] = page[-1]["id"]


def eventually(read: Any, want: Any, seconds: float = 20) -> Any:
    """What `read()` gives once it gives `want` (polling), or its last answer after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = read()
        if found == want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def holders(url: str) -> dict[str | None, int]:
    database = open_database(url)
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(select(partitions.c.holder)).all()
    finally:
        database.dispose()
    found: dict[str | None, int] = {}
    for (holder,) in rows:
        found[holder] = found.get(holder, 0) + 1
    return found


@pytest.mark.parametrize("appliers", ["thread", "process"])
def test_a_killed_servers_partitions_are_taken_over_and_nothing_is_lost(
    database_url: str, tmp_path: Path, appliers: str
) -> None:
    """Two servers share the partitions; one is killed with events of its partitions still
    to apply; the other takes its partitions over (when their leases expire, or at once when
    an applier process sees its server gone), and the sessions are those of every
    acknowledged event. Appliers run in each server or in a process of their own."""
    database = open_database(database_url)
    migrate(database)
    project, key = make_project(database, "takeover")
    database.dispose()
    logged = ["--wait", "logged", "--appliers", appliers]
    servers = [Server(database_url, tmp_path / f"server-{n}.log", logged) for n in range(2)]
    try:
        shares = eventually(lambda: sorted(holders(database_url).values()), [8, 8])
        assert shares == [8, 8]  # a fair share each
        bodies = recent_history(4, rooms=16)
        random.Random(5).shuffle(bodies)
        headers = {"Authorization": f"Bearer {key}"}
        first, rest = bodies[: len(bodies) // 2], bodies[len(bodies) // 2 :]
        answer = httpx.post(f"{servers[0].url}/v1/events", json=first, headers=headers)
        assert answer.json()["accepted"] == len(first)
        orphans = children(servers[0].process.pid, b"spawn_main")  # its applier process
        assert len(orphans) == (1 if appliers == "process" else 0)
        servers[0].kill()  # likely before it applied all of its partitions' share
        answer = httpx.post(f"{servers[1].url}/v1/events", json=rest, headers=headers)
        assert answer.json()["accepted"] == len(rest)
        want = expected(bodies, project.name)
        assert eventually(lambda: listed(servers[1].url, key), want) == want
        assert eventually(lambda: list(holders(database_url).values()), [16]) == [16]
        # An applier process sees its server gone, and ends (not waiting on a lock the
        # killed server held).
        assert eventually(lambda: [p for p in orphans if alive(p)], [], 10) == []
    finally:
        for server in servers:
            server.stop()


def test_two_servers_writing_the_same_rooms_agree_with_sessionize(
    postgres_url: str, tmp_path: Path
) -> None:
    url = fresh_postgres(postgres_url)
    try:
        database = open_database(url)
        migrate(database)
        project, key = make_project(database, "concurrent")
        database.dispose()
        bodies = recent_history(1, rooms=12)
        random.Random(2).shuffle(bodies)
        servers = [Server(url, tmp_path / f"server-{n}.log") for n in range(2)]
        try:
            halves = [bodies[0::2], bodies[1::2]]
            failures: list[str] = []

            def post_all(server: Server, mine: list[dict[str, Any]]) -> None:
                rnd = random.Random(server.port)
                with httpx.Client(base_url=server.url, timeout=30) as client:
                    i = 0
                    while i < len(mine):
                        size = rnd.choice([1, 1, 3, 10, 40])
                        # Repeat some events, in both servers, to race the duplicates too.
                        chunk = mine[i : i + size] + rnd.sample(bodies, 2)
                        answer = client.post(
                            "/v1/events", json=chunk, headers={"Authorization": f"Bearer {key}"}
                        )
                        if answer.status_code != 200 or answer.json()["rejected"]:
                            failures.append(answer.text)
                        i += size

            threads = [
                threading.Thread(target=post_all, args=(server, half))
                for server, half in zip(servers, halves, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            want = expected(bodies, project.name)
            assert len(want) > 50
            # Time-driven changes come from the rooms' partition holders, within a tick.
            for server in servers:
                assert eventually(lambda s=server: listed(s.url, key), want) == want
        finally:
            for server in servers:
                server.stop()
    finally:
        drop_postgres(postgres_url, url)


def test_acknowledged_events_survive_a_kill_and_rebuild_agrees(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roomlog.db'}"
    database = open_database(url)
    migrate(database)
    project, key = make_project(database, "default")
    bodies = recent_history(3, rooms=12)
    bodies.sort(key=lambda b: b["at"])
    server = Server(url, tmp_path / "server.log")
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_until_killed() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(0, len(bodies), 5):
                if stop.is_set():
                    return
                chunk = bodies[i : i + 5]
                try:
                    answer = client.post(
                        "/v1/events", json=chunk, headers={"Authorization": f"Bearer {key}"}
                    )
                except httpx.TransportError:
                    return
                if answer.status_code == 200:
                    acknowledged.extend(b["id"] for b in chunk)

    poster = threading.Thread(target=post_until_killed)
    poster.start()
    while len(acknowledged) < len(bodies) // 3 and poster.is_alive():
        time.sleep(0.01)
    server.kill()
    stop.set()
    poster.join()
    assert 0 < len(acknowledged) < len(bodies)

    with database.engine.connect() as connection:
        kept = {row[0] for row in connection.execute(select(events.c.id))}
    assert set(acknowledged) <= kept

    server = Server(url, tmp_path / "server.log")
    try:
        stored = [b for b in bodies if b["id"] in kept]
        # What the killed server left to apply is applied once its leases expire.
        before = eventually(lambda: listed(server.url, key), expected(stored, project.name))
        assert main(["rebuild", "--database-url", url]) == 0
        assert listed(server.url, key) == before
    finally:
        server.stop()
        database.dispose()
