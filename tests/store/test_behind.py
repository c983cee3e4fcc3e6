"""Appends and appliers running at the same time: what one transaction does while another is
open must not lose an event nor hold the other up."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select, update

from roomlog.domain.batch import sessionize
from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.store import behind
from roomlog.store.behind import apply_pending
from roomlog.store.db import migrate, open_database
from roomlog.store.leases import claim, forget, part_of
from roomlog.store.projects import Project, ensure_project
from roomlog.store.queries import presence
from roomlog.store.schema import partitions, pending, sessions
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from tests.fixtures import T0
from tests.workers.partitions import stored_sessions, visits

NOW = (T0 + 60) * MICROS


def _join(project: Project, person: str) -> list[Submission]:
    at = (T0 + 10) * MICROS
    return [Submission(project, [(0, PresenceEvent(f"e-{person}", JOINED, "r", person, at))])]


def _apply_all(store: Store) -> None:
    while sum(apply_pending(store, part, None, NOW, NOW) for part in range(16)):
        pass


def test_an_append_committed_while_the_applier_works_is_applied_not_dropped(
    postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pending rows are numbered when they are written, not when they commit: an append
    that took a lower number commits after the applier read the higher one. The applier
    removes only the rows it applied, so the late one is still there for its next turn."""
    stores = [Store(open_database(postgres_schema), Settings()) for _ in range(3)]
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

    def commit_the_slow_one_first(connection: Connection, taken: list[int]) -> None:
        release.set()
        slow.join(30)
        forget(connection, taken)

    monkeypatch.setattr(behind, "forget", commit_the_slow_one_first)
    try:
        _apply_all(applier)
    finally:
        release.set()
        slow.join(30)
    monkeypatch.setattr(behind, "forget", forget)
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


def _sqlite_store(tmp_path: Path, settings: Settings | None = None) -> tuple[Store, Project]:
    database = open_database(f"sqlite:///{tmp_path / 'roomlog.db'}")
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    return Store(database, settings or Settings()), project


def _lock_is_free(path: Path) -> bool:
    """Whether another connection could take SQLite's write lock right now, without waiting."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_a_late_event_is_re_derived_on_sqlite_without_holding_the_writers_lock(
    tmp_path: Path,
) -> None:
    """The applier reads a late event's room back from the log holding no lock: the server's
    writer could append meanwhile. The sessions are those of the whole history."""
    store, project = _sqlite_store(tmp_path, Settings(late_window=10 * MICROS))
    history = []
    for n in range(40):  # people coming and going for 20 minutes; the room settles as it goes
        at = (T0 + 30 * n) * MICROS
        history.append(PresenceEvent(f"j{n}", JOINED, "r", f"p{n % 3}", at))
        history.append(PresenceEvent(f"l{n}", LEFT, "r", f"p{n % 3}", at + 20 * MICROS))
    now = (T0 + 1300) * MICROS
    for given in history:
        store.ingest([Submission(project, [(0, given)])], now)
    late = [
        PresenceEvent("late-j", JOINED, "r", "x", (T0 + 5) * MICROS),
        PresenceEvent("late-l", LEFT, "r", "x", (T0 + 700) * MICROS),
    ]
    store.ingest([Submission(project, list(enumerate(late)))], now, behind=True)

    free: list[bool] = []

    def reading_the_log(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM events" in statement and "ORDER BY events.at" in statement:
            free.append(_lock_is_free(tmp_path / "roomlog.db"))

    event.listen(store.database.engine, "before_cursor_execute", reading_the_log)
    _apply_all(store)
    event.remove(store.database.engine, "before_cursor_execute", reading_the_log)
    assert free and all(free)

    expected = sessionize([*history, *late], now, Settings().rules)
    with store.database.reader.connect() as connection:
        stored = connection.execute(
            select(sessions.c.start_at, sessions.c.end_at).order_by(sessions.c.start_at)
        ).all()
    assert [tuple(row) for row in stored] == [(s.start, s.end) for s in expected]
    assert any(a.participant_id == "x" for s in expected for a in s.participants)
    store.database.dispose()


def test_a_room_written_while_the_applier_read_it_is_applied_again_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the applier plans from a snapshot; a room another writer changed meanwhile
    is caught at the write and the whole transaction is done again, under the lock."""
    store, project = _sqlite_store(tmp_path)
    other = Store(open_database(f"sqlite:///{tmp_path / 'roomlog.db'}"))
    store.ingest(_join(project, "ana"), NOW, behind=True)
    interfered: list[bool] = []

    decoded = behind._decoded

    def write_meanwhile(*args: Any) -> Any:
        # Once the applier's snapshot is taken (its pending rows are read), before it plans.
        if not interfered:
            interfered.append(True)
            other.ingest(_join(project, "bo"), NOW)  # applied at once: the room's version moves
        return decoded(*args)

    monkeypatch.setattr(behind, "_decoded", write_meanwhile)
    part = part_of(project.id, "r", Settings().partitions)
    assert apply_pending(store, part, None, NOW, NOW) == 1
    monkeypatch.setattr(behind, "_decoded", decoded)
    assert interfered
    with store.database.reader.connect() as connection:
        here = sorted(p.participant_id for p in presence(connection, project.id, "r"))
        left = connection.execute(select(func.count()).select_from(pending)).scalar_one()
    assert here == ["ana", "bo"]
    assert left == 0
    other.database.dispose()
    store.database.dispose()


def test_several_partitions_in_one_transaction_apply_what_one_by_one_would(
    tmp_path: Path,
) -> None:
    store, project = _sqlite_store(tmp_path)
    events = visits([f"room-{n}" for n in range(30)])
    store.ingest([Submission(project, list(enumerate(events)))], NOW, behind=True)
    parts = sorted({part_of(project.id, e.room, 16) for e in events})
    assert len(parts) > 4
    taken = behind.apply_parts(store, list(range(16)), None, NOW, NOW)
    assert {part for part, rows in taken.items() if rows} == set(parts)
    assert behind.apply_parts(store, list(range(16)), None, NOW, NOW) == dict.fromkeys(range(16), 0)
    expected = sessionize(events, NOW, Settings().rules)
    assert stored_sessions(store.database) == sorted((s.room, s.start, s.end) for s in expected)
    store.database.dispose()


def test_a_partition_taken_over_meanwhile_is_left_to_its_new_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several partitions go in one transaction; if another applier took one of them between
    the read and the write, each is applied on its own, and the lost one not at all."""
    store, project = _sqlite_store(tmp_path)
    events = visits([f"room-{n}" for n in range(30)])
    store.ingest([Submission(project, list(enumerate(events)))], NOW, behind=True)
    with store.database.engine.begin() as connection:
        mine = claim(connection, "a", NOW, 10 * MICROS)
    assert mine == list(range(16))
    lost = part_of(project.id, "room-0", 16)
    decoded = behind._decoded

    def taken_over(*args: Any) -> Any:
        with store.database.engine.begin() as connection:
            connection.execute(
                update(partitions).where(partitions.c.part == lost).values(holder="b")
            )
        return decoded(*args)

    monkeypatch.setattr(behind, "_decoded", taken_over)
    taken = behind.apply_parts(store, mine, "a", NOW, NOW)
    assert taken[lost] == 0
    assert sum(taken.values()) > 0
    with store.database.reader.connect() as connection:
        waiting = connection.execute(select(pending.c.part).distinct()).scalars().all()
    assert waiting == [lost]
    store.database.dispose()
