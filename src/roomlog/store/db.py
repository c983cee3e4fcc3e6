"""Database connections for SQLite (the embedded default) and PostgreSQL, and migrations.

SQLite runs in WAL mode with `synchronous=FULL`, so a commit is on disk before it returns,
and copies the WAL back into the database file every `WAL_PAGES` pages; writers take the
database lock up front (`BEGIN IMMEDIATE`) rather than failing to upgrade a
read lock halfway through. PostgreSQL goes through psycopg 3.

A transaction marked `DERIVED` writes only what the event log derives again (rooms, sessions,
the outbox, pending events taken off): its commit returns without waiting for the disk
(SQLite's `synchronous=NORMAL`, PostgreSQL's `synchronous_commit = off`). Both databases keep
their logs in order, so a crash of the machine can only lose the newest such transactions,
whole, and never one that an ordinary commit (an append) made durable after them. What they
applied is then pending again, and is applied again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from roomlog.store.defaults import DEFAULT_URL, ENV_URL

# The execution option that marks `Database.reader`'s connections.
READ_ONLY: Final = "roomlog_read_only"
# The execution option that marks a transaction whose commit need not wait for the disk.
DERIVED: Final = "roomlog_derived"
# SQLite: pages the WAL holds before a commit copies them back into the database file (a
# checkpoint; SQLite's default is 1,000). A page written again and again between two
# checkpoints (an index's leaves, a room's row) is copied back once: at 10,000 a 1,000-event
# batch wrote a quarter fewer bytes (docs/PERFORMANCE.md). The WAL file grows to about
# 40 MB (10,000 pages of 4 KiB) and stays that size for reuse.
WAL_PAGES: Final = 10_000
# PostgreSQL: the advisory lock (this key and the schema's name hashed) that a process holds
# while it vacuums the schema's tables (`store/vacuum.py`) and a migration holds throughout.
MAINTENANCE_LOCK: Final = 0x726F6F6D  # "room"
# PostgreSQL: the advisory lock under which the partitions' rows are made (`store/leases.py`).
PARTITIONS_LOCK: Final = 0x70617274  # "part"


class BadDatabaseUrl(ValueError):
    """A database URL roomlog cannot use; the message says why."""


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3; a bare path means a SQLite file."""
    if "://" not in url:
        return f"sqlite:///{url}"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise BadDatabaseUrl(f"{url!r} is not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    raise BadDatabaseUrl(f"{url!r}: roomlog stores into sqlite:/// or postgresql:// URLs")


@dataclass(frozen=True)
class Database:
    """Connections to one database: `engine` for everything, `sqlite` tells the dialect."""

    url: str
    engine: Engine
    # The same connections for reading only: in SQLite their transactions begin deferred,
    # reading a snapshot of the WAL without taking the one writer's lock (`_on_begin`).
    reader: Engine

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event issue BEGIN, instead of the driver's own guesswork.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Straight to the driver: SQLAlchemy's execution path costs more than the statement.
        # A transaction that may write takes the lock at once (a deferred one that tries to
        # write after another writer committed would fail instead of waiting); one that only
        # reads (`Database.reader`) takes no lock, so it neither waits for nor holds up a write.
        options = connection.get_execution_options()
        driver = connection.connection.driver_connection
        if options.get(READ_ONLY, False):
            driver.execute("BEGIN")
            return
        # `synchronous` is the connection's: set when it changes, before the transaction.
        wanted = "NORMAL" if options.get(DERIVED, False) else "FULL"
        info = connection.connection.info
        if info.get(_SYNCHRONOUS, "FULL") != wanted:
            driver.execute(f"PRAGMA synchronous={wanted}")
            info[_SYNCHRONOUS] = wanted
        driver.execute("BEGIN IMMEDIATE")

    return engine


_SYNCHRONOUS: Final = "roomlog_synchronous"


def _postgresql_engine(url: str) -> Engine:
    engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(DERIVED, False):
            # The transaction's first statement: psycopg begins it here.
            connection.connection.driver_connection.execute("SET LOCAL synchronous_commit TO OFF")

    return engine


def open_database(url: str | None = None) -> Database:
    """Open the database at `url` (default: $ROOMLOG_DATABASE_URL, else ./roomlog.db)."""
    chosen = normalise_url(url or os.environ.get(ENV_URL) or DEFAULT_URL)
    opened = _sqlite_engine if chosen.startswith("sqlite") else _postgresql_engine
    engine = opened(chosen)
    return Database(chosen, engine, engine.execution_options(**{READ_ONLY: True}))


def migrate(database: Database) -> None:
    """Bring the schema to the newest version; safe when several processes start at once."""
    config = Config()
    config.set_main_option("script_location", "roomlog.store:migrations")
    with database.engine.begin() as connection:
        if not database.sqlite:
            # Serialise concurrent starts: DDL is transactional in PostgreSQL, so the second
            # process waits here, then finds the schema up to date.
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS roomlog_migrations (x int)")
            connection.exec_driver_sql("LOCK TABLE roomlog_migrations IN EXCLUSIVE MODE")
            # Wait for a vacuum under way to end, and start none until this commits: a
            # `VACUUM` does not give way to a migration's lock as autovacuum does, and every
            # query on its table would queue behind the migration waiting for it.
            lock_schema(connection, MAINTENANCE_LOCK)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def lock_schema(connection: Connection, key: int) -> None:
    """PostgreSQL: wait for, then hold until the transaction ends, the advisory lock `key` of
    the connection's schema (the key and the schema's name hashed)."""
    connection.exec_driver_sql(
        "SELECT pg_advisory_xact_lock(%(key)s, hashtext(current_schema()))", {"key": key}
    )
