"""The operators' commands: `roomlog prune` (with `--dry-run`), `roomlog backup`, and a
restore (SQLite's file; PostgreSQL's pg_dump and pg_restore) that `roomlog rebuild` confirms."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from roomlog.store.db import migrate, open_database
from roomlog.store.schema import deliveries, outbox
from tests.bodies import joined, left
from tests.cli.test_commands import roomlog
from tests.fixtures import POSTGRES_URL, scratch_database

DAY = 86_400_000_000


def _events(path: Path, prefix: str, rooms: int) -> Path:
    bodies = []
    for r in range(rooms):
        room = f"{prefix}-{r}"
        bodies += [joined(f"{room}-a", r, room), joined(f"{room}-b", r + 5, room)]
        bodies += [left(f"{room}-b", r + 300, room), left(f"{room}-a", r + 400, room)]
    path.write_text("".join(json.dumps({**b, "id": f"{prefix}-{b['id']}"}) + "\n" for b in bodies))
    return path


def _filled(url: str, folder: Path) -> str:
    """Import a history into `url`; the sessions as `roomlog export sessions` writes them."""
    done = roomlog("import", str(_events(folder / "a.ndjson", "a", 5)), "--database-url", url)
    assert done.returncode == 0, done.stderr
    exported = roomlog("export", "sessions", "--database-url", url)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count("\n") == 6  # a header and five sessions
    return exported.stdout


def _confirmed(url: str, exported: str) -> None:
    """`roomlog rebuild` on a restored copy finds every session as stored."""
    rebuilt = roomlog("rebuild", "--database-url", url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "5 session(s); 0 differed from the stored ones" in rebuilt.stdout
    again = roomlog("export", "sessions", "--database-url", url)
    assert again.stdout == exported


def test_a_sqlite_backup_restores_what_was_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    exported = _filled(url, tmp_path)
    copy = tmp_path / "copy.db"
    made = roomlog("backup", str(copy), "--database-url", url)
    assert made.returncode == 0, made.stderr
    assert roomlog("backup", str(copy), "--database-url", url).returncode == 1  # exists
    later = roomlog("import", str(_events(tmp_path / "b.ndjson", "b", 3)), "--database-url", url)
    assert later.returncode == 0
    restored = tmp_path / "restored.db"
    shutil.copyfile(copy, restored)
    _confirmed(f"sqlite:///{restored}", exported)


def test_backup_points_postgresql_to_pg_dump(tmp_path: Path) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        refused = roomlog("backup", str(tmp_path / "x.dump"), "--database-url", url)
    assert refused.returncode == 2
    assert "pg_dump --format=custom" in refused.stderr
    assert not (tmp_path / "x.dump").exists()


@pytest.fixture
def two_databases(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two new, empty PostgreSQL databases (pg_dump takes a whole database)."""
    names = [f"roomlog_backup_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    base = POSTGRES_URL.rsplit("/", 1)[0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_pg_dump_restores_what_was_there(two_databases: tuple[str, str], tmp_path: Path) -> None:
    """The commands docs/OPERATIONS.md gives."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed (Debian: postgresql-client)")
    live, spare = two_databases
    exported = _filled(live, tmp_path)
    dump = tmp_path / "roomlog.dump"
    subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), live], check=True)
    later = roomlog("import", str(_events(tmp_path / "b.ndjson", "b", 3)), "--database-url", live)
    assert later.returncode == 0
    subprocess.run(["pg_restore", "--no-owner", "--dbname", spare, str(dump)], check=True)
    _confirmed(spare, exported)


def test_prune_dry_run_says_what_prune_removes(database_url: str) -> None:
    database = open_database(database_url)
    migrate(database)
    now = time.time_ns() // 1000
    rows = [  # (event, status, when): done long ago, done lately, still to send long ago
        ("old", "delivered", now - 40 * DAY),
        ("gave-up", "failed", now - 31 * DAY),
        ("new", "delivered", now - 2 * DAY),
        ("waiting", "pending", now - 40 * DAY),
    ]
    with database.engine.begin() as connection:
        for event, status, at in rows:
            connection.execute(
                outbox.insert().values(
                    webhook_id="w",
                    event_id=event,
                    type="meeting.ended",
                    payload=b"{}",
                    created_at=at,
                    status=status,
                    attempts=1,
                    next_attempt_at=at,
                )
            )
            connection.execute(
                deliveries.insert().values(
                    webhook_id="w",
                    event_id=event,
                    type="meeting.ended",
                    attempt=1,
                    at=at,
                    status_code=200,
                    duration_ms=3,
                )
            )
    dry = roomlog("prune", "--dry-run", "--database-url", database_url)
    assert dry.returncode == 0, dry.stderr
    said = dict(line.split() for line in dry.stdout.splitlines()[1:7])
    assert said == {
        "events": "0",
        "sessions": "0",
        "chat_messages": "0",
        "checkpoints": "0",
        "outbox": "2",
        "deliveries": "3",
    }
    assert "all kept (no --retention-days)" in dry.stdout

    def left_over() -> tuple[int, int]:
        with database.engine.connect() as connection:
            kept = connection.execute(select(func.count()).select_from(outbox)).scalar_one()
            logged = connection.execute(select(func.count()).select_from(deliveries)).scalar_one()
        return kept, logged

    assert left_over() == (4, 4)
    done = roomlog("prune", "--database-url", database_url)
    assert done.returncode == 0
    assert done.stdout.replace("REMOVED", "WOULD REMOVE") == dry.stdout
    assert left_over() == (2, 1)
    with database.engine.connect() as connection:
        kept = sorted(r[0] for r in connection.execute(select(outbox.c.event_id)))
    assert kept == ["new", "waiting"]
    database.dispose()
