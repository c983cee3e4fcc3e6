"""Transactions on the store's database: retried when the database says to (or when another
process appended the same ids first), and optionally on one connection a thread holds."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from roomlog.store.db import DERIVED, Database


class ConcurrentAppend(Exception):
    """Another writer stored some of the same event ids while this one was writing them."""


class LostConnection(Exception):
    """The connection a thread held broke during a transaction (the server restarted, or
    ended the session): the transaction is tried again on a fresh one."""


def transient(exc: BaseException) -> bool:
    """Deadlocks and serialisation failures in PostgreSQL, a busy database in SQLite, and
    events stored by another process at the same time."""
    if isinstance(exc, ConcurrentAppend | LostConnection):
        return True
    # The write path's own statements raise the driver's errors, not SQLAlchemy's.
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, sqlite3.OperationalError):
        return "database is locked" in str(error)
    return getattr(error, "sqlstate", None) in ("40P01", "40001")


retrying = retry(
    retry=retry_if_exception(transient),
    stop=stop_after_attempt(8),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    reraise=True,
)


class Transactions:
    """The transactions of one database; a thread may hold one connection across them."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._held = threading.local()
        self._derived = database.engine.execution_options(**{DERIVED: True})

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within this block, the calling thread's transactions share one connection.

        The writer thread holds one for its life: no pool checkout and reset per group, and
        SQLite keeps its page cache between transactions. A transaction that fails gives the
        connection up, and the next one takes a fresh one from the pool.
        """
        self._held.connection = None
        self._held.holding = True
        try:
            yield
        finally:
            self._held.holding = False
            held, self._held.connection = self._held.connection, None
            if held is not None:
                held.close()

    @contextmanager
    def begin(self, derived: bool = False) -> Iterator[Connection]:
        """One transaction, on the thread's held connection if it holds one.

        `derived`: the transaction writes only what the event log derives again, and its
        commit need not wait for the disk (`db.DERIVED`)."""
        if not getattr(self._held, "holding", False):
            with (self._derived if derived else self.database.engine).begin() as connection:
                yield connection
            return
        held: Connection | None = self._held.connection
        if held is None:
            held = self._held.connection = self.database.engine.connect()
        held.execution_options(**{DERIVED: derived})
        try:
            with held.begin():
                yield held
        except Exception as exc:
            self._held.connection = None
            lost = broken(held)
            held.invalidate()
            held.close()
            if lost:
                raise LostConnection(str(exc)) from exc
            raise


def broken(connection: Connection) -> bool:
    """Whether `connection` lost its database: SQLAlchemy saw it go, or the driver did (the
    write path's own statements run on the driver, out of SQLAlchemy's sight)."""
    if connection.invalidated:
        return True
    return bool(getattr(connection.connection.dbapi_connection, "closed", False))


class Turn:
    """One room-writing transaction at a time (the writer's and the appliers'): within a
    process a lock; for a SQLite file, across processes too, through an advisory lock on a
    file beside it. The kernel hands that lock over the moment it is released, where
    SQLite's own busy handler sleeps up to 100 ms between tries; so an applier in a process
    of its own and the server's writer take turns as promptly as two threads do."""

    def __init__(self, database: Database) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        name = database.engine.url.database if database.sqlite else None
        if name and name != ":memory:" and not name.startswith("file:"):
            self._fd = os.open(f"{name}-turn", os.O_RDWR | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, self._fd)

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()
