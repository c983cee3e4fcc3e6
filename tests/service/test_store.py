"""The store's retry rule: which failures of a write transaction are worth trying again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

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
