"""The store's transactions: which failures are worth trying again, the connection a thread
holds, and the plans of its lookups."""

from __future__ import annotations

import re
import sqlite3
import uuid
from contextlib import nullcontext
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import OperationalError

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store import statements
from roomlog.store.behind import apply_pending
from roomlog.store.db import READ_ONLY, WAL_PAGES, Database, migrate, open_database
from roomlog.store.projects import Project, ensure_project
from roomlog.store.schema import events, sessions
from roomlog.store.store import Store
from roomlog.store.transactions import ConcurrentAppend, LostConnection, transient
from roomlog.store.writes import Submission
from tests.fixtures import POSTGRES_URL, T0


def locked_error(path: Path) -> sqlite3.OperationalError:
    """The error SQLite's driver raises when another connection holds the write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()
    return caught.value


def test_lock_waits_deadlocks_and_concurrent_appends_are_retried(tmp_path: Path) -> None:
    locked = locked_error(tmp_path / "db")
    # The write path's own statements raise the driver's errors; SQLAlchemy's wrap them.
    assert transient(locked)
    assert transient(OperationalError("BEGIN IMMEDIATE", None, locked))
    assert transient(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert transient(psycopg.errors.SerializationFailure("could not serialize access"))
    assert transient(ConcurrentAppend("2 of 5 ids were taken"))
    assert transient(LostConnection("server closed the connection unexpectedly"))


def test_other_failures_are_not_retried() -> None:
    assert not transient(sqlite3.IntegrityError("UNIQUE constraint failed: events.id"))
    assert not transient(sqlite3.OperationalError("no such table: events"))
    assert not transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not transient(ValueError("not a database error"))


def test_lookups_probe_the_primary_key_on_a_table_filled_since_its_statistics(
    database: Database,
) -> None:
    """A planner that still believes the log empty must not read it all for a few ids."""
    sql = statements.SQLITE if database.sqlite else statements.POSTGRES
    numbers = (
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000)"
        if database.sqlite
        else "WITH g(n) AS (SELECT generate_series(1, 20000))"
    )
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
        connection.exec_driver_sql(
            f"{numbers} INSERT INTO events (project_id, id, room, joined, participant_id, at,"
            f" received_at) SELECT {project.id}, 'e' || n, 'r' || (n / 100), 1, 'p', n, 0 FROM g"
        )
        parameters = (sql.keys(["e5", "e70", "nope"]), project.id)
        found = statements.rows(connection, sql.existing_keyed, parameters)
        explain = "EXPLAIN QUERY PLAN " if database.sqlite else "EXPLAIN "
        plan = " ".join(
            str(row[-1])
            for row in statements.rows(connection, explain + sql.existing_keyed, parameters)
        )
    assert sorted(row[0] for row in found) == ["e5", "e70"]
    if database.sqlite:
        assert "sqlite_autoindex_events_1 (project_id=? AND id=?)" in plan
        # The same after an append, for the rows stored before it (up to rowid 50).
        with database.engine.begin() as connection:
            before = (*parameters, 50)
            found = statements.rows(connection, sql.existing_before_keyed, before)
            plan = " ".join(
                str(row[-1])
                for row in statements.rows(connection, explain + sql.existing_before_keyed, before)
            )
        assert [row[0] for row in found] == ["e5"]
        assert "sqlite_autoindex_events_1 (project_id=? AND id=?)" in plan
    else:
        # One probe per id: the id is part of the primary key's condition, not a filter.
        assert re.search(
            r"events_pkey .* Index Cond: \(\(project_id = \d+\) AND .*= k\.id\)\)", plan
        )


NOW = (T0 + 60) * MICROS


def _arrival(project: Project, n: int) -> list[Submission]:
    at = (T0 + n) * MICROS
    return [Submission(project, [(0, PresenceEvent(f"e{n}", JOINED, "r", f"p{n}", at))])]


def _stored(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


def _watched(database: Database) -> tuple[Store, Project, list[object]]:
    """A store over `database`, a project, and the DBAPI connections taken from the pool from
    now on, one item per checkout."""
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    taken: list[object] = []
    event.listen(database.engine, "checkout", lambda dbapi, _record, _proxy: taken.append(dbapi))
    return Store(database), project, taken


def test_a_thread_holding_a_connection_runs_all_its_transactions_on_it(
    database: Database,
) -> None:
    store, project, taken = _watched(database)
    with store.holding():
        for n in range(3):
            store.ingest(_arrival(project, n), NOW)
    assert len(taken) == 1
    # Not holding one, each transaction takes a connection from the pool.
    for n in range(3, 5):
        store.ingest(_arrival(project, n), NOW)
    assert len(taken) == 3
    assert _stored(database) == 5


def test_a_failed_transaction_gives_up_the_held_connection_and_keeps_nothing(
    database: Database,
) -> None:
    store, project, taken = _watched(database)
    with store.holding():
        store.ingest(_arrival(project, 0), NOW)
        with pytest.raises(RuntimeError, match="halfway"), store.transactions.begin() as connection:
            connection.exec_driver_sql("DELETE FROM events")
            raise RuntimeError("halfway")
        store.ingest(_arrival(project, 1), NOW)
    assert len(taken) == 2
    assert taken[0] is not taken[1]
    assert _stored(database) == 2


def test_a_held_connection_the_server_ends_is_replaced_without_failing_the_write(
    postgres_database: Database,
) -> None:
    database = postgres_database
    store, project, taken = _watched(database)
    with store.holding():
        store.ingest(_arrival(project, 0), NOW)
        held = taken[-1]
        assert isinstance(held, psycopg.Connection)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (held.info.backend_pid,))
        store.ingest(_arrival(project, 1), NOW)
    assert len(taken) == 2
    assert _stored(database) == 2


def _durability(connection: Connection, database: Database) -> str:
    """How the transaction `connection` is in will commit: "full" (on disk before the commit
    returns) or "lazy"."""
    if database.sqlite:
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
        return {2: "full", 1: "lazy"}[level]
    setting = connection.exec_driver_sql("SHOW synchronous_commit").scalar_one()
    return {"on": "full", "off": "lazy"}[setting]


@pytest.mark.parametrize("held", [False, True])
def test_only_derived_transactions_commit_without_waiting_for_the_disk(
    database: Database, held: bool
) -> None:
    store = Store(database)
    seen = []
    with store.holding() if held else nullcontext():
        for derived in (False, True, False, True, True, False):
            with store.transactions.begin(derived=derived) as connection:
                seen.append(_durability(connection, database))
    assert seen == ["full", "lazy", "full", "lazy", "lazy", "full"]
    # Connections back in the pool keep no lazy setting for whoever takes them next.
    with database.engine.begin() as connection:
        assert _durability(connection, database) == "full"


def test_appends_commit_durably_and_the_appliers_lazily(database: Database) -> None:
    """What the applier writes (`apply_pending`, and the passage of time) can be derived
    again from the log; an append cannot."""
    store, project, _ = _watched(database)
    commits: list[tuple[str, bool]] = []

    def committing(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            return  # `apply_pending` reads first, on SQLite
        wrote_sessions = bool(
            connection.exec_driver_sql("SELECT count(*) FROM sessions").scalar_one()
        )
        commits.append((_durability(connection, database), wrote_sessions))

    event.listen(database.engine, "commit", committing)
    with store.holding():
        # Alone for 10 s at NOW: the session begins 20 s later, with no event.
        store.ingest(_arrival(project, 50), NOW, behind=True)
        appended = len(commits)
        assert sum(apply_pending(store, part, None, NOW, NOW) for part in range(16)) == 1
        applied = len(commits)
        assert store.tick(NOW + 600 * MICROS) == 1
    event.remove(database.engine, "commit", committing)
    assert {durability for durability, _ in commits[:appended]} == {"full"}
    assert set(commits[appended:applied]) == {("lazy", False)}  # the room: no session yet
    assert commits[applied:] == [("lazy", True)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 20), st.integers(0, 1)), min_size=1, max_size=12),
        min_size=1,
        max_size=5,
    )
)
def test_each_append_takes_exactly_the_ids_not_stored_yet(
    database: Database, requests: list[list[tuple[int, int]]]
) -> None:
    """Requests of events whose ids repeat, within a request and across requests: the log
    keeps each id's first content, and every later occurrence is compared with it (the same
    content: a duplicate; other content: rejected), as this model of the log says."""
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, f"append-{uuid.uuid4().hex[:8]}")
    store = Store(database)
    logged: dict[str, int] = {}
    for request in requests:
        accepted = duplicates = rejected = 0
        for n, variant in request:
            eid = f"e{n}"
            if eid not in logged:
                logged[eid] = variant
                accepted += 1
            elif logged[eid] == variant:
                duplicates += 1
            else:
                rejected += 1
        given = [
            (index, PresenceEvent(f"e{n}", JOINED, f"room-{v}", f"p{n}", (T0 + n) * MICROS))
            for index, (n, v) in enumerate(request)
        ]
        (result,) = store.ingest([Submission(project, given)], NOW, behind=True)
        assert (result.accepted, result.duplicates, len(result.rejected)) == (
            accepted,
            duplicates,
            rejected,
        )
    with database.engine.connect() as connection:
        rows = connection.execute(
            select(events.c.id, events.c.room).where(events.c.project_id == project.id)
        ).all()
    assert {eid: room for eid, room in rows} == {eid: f"room-{v}" for eid, v in logged.items()}


def test_sqlite_copies_the_wal_back_only_every_wal_pages(tmp_path: Path) -> None:
    """A page written in many commits between two checkpoints is copied back once: the WAL
    keeps more than SQLite's default of 1,000 pages before a commit checkpoints it."""
    database = open_database(f"sqlite:///{tmp_path / 'wal.db'}")
    migrate(database)
    blob = bytes(3000)  # a page (4 KiB) per row
    for _ in range(30):  # 1,500 pages in 30 commits
        with database.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
            connection.exec_driver_sql(
                "INSERT INTO filler (b) VALUES " + ", ".join(["(?)"] * 50), tuple([blob] * 50)
            )
    with database.engine.begin() as connection:  # the setting of a connection of the pool
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == WAL_PAGES
    # While the pool's connections are open (the last one to close checkpoints everything):
    raw = sqlite3.connect(tmp_path / "wal.db")
    try:
        _, frames, _ = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        raw.close()
        database.dispose()
    assert 1_500 < frames < WAL_PAGES


def test_a_stored_sessions_update_keeps_the_start_its_id_names(database: Database) -> None:
    """A session's id names its room and start, so an update changes neither; the rest of
    the row is the update's."""
    sql = statements.SQLITE if database.sqlite else statements.POSTGRES
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "keeps")
        row = (project.id, "s-1", "room", T0, None, 2, 2, b"first", 0)
        statements.run_many(connection, sql.upsert_sessions, [row])
        later = (project.id, "s-1", "room", T0 + MICROS, T0 + 60 * MICROS, 3, 4, b"second", 9)
        statements.run_many(connection, sql.upsert_sessions, [later])
        stored = connection.execute(
            select(
                sessions.c.start_at,
                sessions.c.end_at,
                sessions.c.max_participants,
                sessions.c.participant_count,
                sessions.c.participants,
                sessions.c.attended,
            ).where(sessions.c.project_id == project.id, sessions.c.id == "s-1")
        ).all()
    assert [tuple(r) for r in stored] == [(T0, T0 + 60 * MICROS, 3, 4, b"second", 9)]
