"""Appends and appliers running at the same time: what one transaction does while another is
open must not lose an event nor hold the other up."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store.behind import apply_pending
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import Project, ensure_project
from roomlog.store.queries import presence
from roomlog.store.schema import pending
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from tests.fixtures import T0, drop_postgres, fresh_postgres

NOW = (T0 + 60) * MICROS


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[str]:
    url = fresh_postgres(postgres_url)
    database = open_database(url)
    migrate(database)
    database.dispose()
    try:
        yield url
    finally:
        drop_postgres(postgres_url, url)


def _join(project: Project, person: str) -> list[Submission]:
    at = (T0 + 10) * MICROS
    return [Submission(project, [(0, PresenceEvent(f"e-{person}", JOINED, "r", person, at))])]


def _apply_all(store: Store) -> None:
    while sum(apply_pending(store, part, None, NOW, NOW) for part in range(16)):
        pass


def test_an_append_committed_while_the_applier_works_is_applied_not_dropped(
    postgres: str,
) -> None:
    """Pending rows are numbered when they are written, not when they commit: an append
    that took a lower number commits after the applier read the higher one. The applier
    removes only the rows it applied, so the late one is still there for its next turn."""
    stores = [Store(open_database(postgres), Settings()) for _ in range(3)]
    first, second, applier = stores
    with first.database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    # The first append also numbers the partitions: done before, so none of the appends
    # below holds a lock the applier waits for.
    first.ingest(_join(project, "cy"), NOW, behind=True)

    at_commit, release = threading.Event(), threading.Event()

    def held_at_commit(_connection: Any) -> None:
        at_commit.set()
        assert release.wait(30)

    event.listen(first.database.engine, "commit", held_at_commit)
    slow = threading.Thread(target=first.ingest, args=(_join(project, "ana"), NOW, True))
    slow.start()
    assert at_commit.wait(30)  # its pending row is written (the lower number), not committed
    second.ingest(_join(project, "bo"), NOW, behind=True)  # the higher number, committed

    def commit_the_slow_one_first(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM PENDING"):
            release.set()
            slow.join(30)

    event.listen(applier.database.engine, "before_cursor_execute", commit_the_slow_one_first)
    try:
        _apply_all(applier)
    finally:
        release.set()
        slow.join(30)
    event.remove(applier.database.engine, "before_cursor_execute", commit_the_slow_one_first)
    _apply_all(applier)

    with applier.database.reader.connect() as connection:
        here = sorted(p.participant_id for p in presence(connection, project.id, "r"))
        left = connection.execute(select(func.count()).select_from(pending)).scalar_one()
    assert here == ["ana", "bo", "cy"]
    assert left == 0
    for store in stores:
        store.database.dispose()


def test_a_read_holds_up_no_write_on_sqlite(tmp_path: Path) -> None:
    """Reads begin deferred: an open read transaction takes no lock, so a write (here from
    another connection that will not wait at all) commits meanwhile."""
    database = open_database(f"sqlite:///{tmp_path / 'roomlog.db'}")
    migrate(database)
    store = Store(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    store.ingest(_join(project, "ana"), NOW)
    with database.reader.connect() as reading:
        assert [p.participant_id for p in presence(reading, project.id, "r")] == ["ana"]
        other = sqlite3.connect(tmp_path / "roomlog.db", timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM pending")
        other.execute("COMMIT")
        other.close()
        # The read still sees its snapshot.
        assert [p.participant_id for p in presence(reading, project.id, "r")] == ["ana"]
    with database.engine.begin() as writing:
        blocked = sqlite3.connect(tmp_path / "roomlog.db", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            blocked.execute("BEGIN IMMEDIATE")
        blocked.close()
        writing.exec_driver_sql("SELECT 1")
    database.dispose()
