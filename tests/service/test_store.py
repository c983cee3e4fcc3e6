"""The store's retry rule: which failures of a write transaction are worth trying again."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from roomlog.service import statements
from roomlog.service.db import Database
from roomlog.service.projects import ensure_project
from roomlog.service.store import ConcurrentAppend, _transient


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
    assert _transient(locked)
    assert _transient(OperationalError("BEGIN IMMEDIATE", None, locked))
    assert _transient(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert _transient(psycopg.errors.SerializationFailure("could not serialize access"))
    assert _transient(ConcurrentAppend("2 of 5 ids were taken"))


def test_other_failures_are_not_retried() -> None:
    assert not _transient(sqlite3.IntegrityError("UNIQUE constraint failed: events.id"))
    assert not _transient(sqlite3.OperationalError("no such table: events"))
    assert not _transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not _transient(ValueError("not a database error"))


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
    else:
        # One probe per id: the id is part of the primary key's condition, not a filter.
        assert re.search(
            r"events_pkey .* Index Cond: \(\(project_id = \d+\) AND .*= k\.id\)\)", plan
        )
