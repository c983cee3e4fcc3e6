"""The service vacuums PostgreSQL's most rewritten tables once their dead rows pile up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import text

from roomlog.store import vacuum
from roomlog.store.db import MAINTENANCE_LOCK, Database, migrate, open_database
from tests.fixtures import POSTGRES_URL, blocked_by, scratch_database


def rewrite_rooms(database: Database, times: int) -> None:
    """Rewrite ten room rows `times` times: dead row versions, as applying leaves them."""
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO projects VALUES (1, 'p', 'pub', 's', 0, 'user_id')"))
        for n in range(10):
            connection.execute(
                text(
                    "INSERT INTO rooms (project_id, name, state, occupancy, presence,"
                    " session_count) VALUES (1, :name, '', 0, '', 0)"
                ),
                {"name": f"r{n}"},
            )
    with database.engine.connect() as connection:
        for k in range(times):
            with connection.begin():
                connection.execute(text("UPDATE rooms SET occupancy = :k"), {"k": k})
        # Report them at this transaction's end, not when the backend next idles for 10 s.
        connection.execute(text("SELECT pg_stat_force_next_flush()"))
        connection.commit()


def once_counted(database: Database, at_least: int) -> list[str]:
    """`vacuum.due`, once PostgreSQL's statistics show the rewrites (a backend reports them
    as `rewrite_rooms` has it flush them)."""
    found: list[str] = []
    for _ in range(50):
        with database.engine.connect() as connection:
            found = vacuum.due(connection, at_least)
        if found:
            return found
        time.sleep(0.1)
    return found


@contextmanager
def rewritten(tmp_path: Path) -> Iterator[Database]:
    """A fresh PostgreSQL schema whose `rooms` has dead rows past 20, counted."""
    with scratch_database("postgresql", tmp_path) as url:
        database = open_database(url)
        migrate(database)
        try:
            rewrite_rooms(database, 30)  # beside 10 live rows (page pruning frees some)
            assert once_counted(database, at_least=20) == ["rooms"]
            yield database
        finally:
            database.dispose()


def test_a_table_with_dead_rows_piled_up_is_vacuumed_and_analysed_then_no_longer_due(
    tmp_path: Path,
) -> None:
    with rewritten(tmp_path) as database:
        assert vacuum.vacuum(database, at_least=20) == (["rooms"], [], ["rooms"])
        with database.engine.connect() as connection:
            dead, changed = connection.execute(
                text(
                    "SELECT n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables"
                    " WHERE relid = 'rooms'::regclass"
                )
            ).one()
            assert (dead, changed) == (0, 0)
            assert vacuum.stale(connection, 20) == []
            assert vacuum.due(connection, 20) == []


def test_below_the_threshold_nothing_is_vacuumed(tmp_path: Path) -> None:
    with rewritten(tmp_path) as database:
        assert vacuum.vacuum(database, at_least=10_000) == ([], [], [])


def test_while_another_process_vacuums_the_schema_this_one_skips(tmp_path: Path) -> None:
    with rewritten(tmp_path) as database:
        schema = str(database.engine.url.query["options"]).rsplit("=", 1)[1]
        key = (MAINTENANCE_LOCK, schema)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", key)
            assert vacuum.vacuum(database, at_least=20) == ([], [], [])
            # Given up here: a closed connection's backend lets its locks go only as it
            # exits, which may come after the next vacuum looked.
            other.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
        assert vacuum.vacuum(database, at_least=20).tables == ["rooms"]


def test_on_sqlite_there_is_nothing_to_vacuum(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        database = open_database(url)
        migrate(database)
        assert vacuum.vacuum(database, at_least=0) == ([], [], [])
        database.dispose()


def test_a_migration_waits_for_a_vacuum_under_way_and_none_starts_during_it(
    tmp_path: Path,
) -> None:
    """A `VACUUM` does not give way to a migration's lock, and every query on its table would
    queue behind the waiting migration: a migration waits for the vacuum round instead, and
    holds the round's lock until it commits."""
    with rewritten(tmp_path) as database:
        schema = str(database.engine.url.query["options"]).rsplit("=", 1)[1]
        key = (MAINTENANCE_LOCK, schema)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as rounds:
            rounds.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", key)  # a round under way
            migrated = threading.Thread(target=migrate, args=(database,))
            migrated.start()
            while not blocked_by(rounds):
                assert migrated.is_alive()
                time.sleep(0.01)
            rounds.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
            migrated.join(30)
            assert not migrated.is_alive()
        with database.engine.begin() as connection:  # a migration under way
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"),
                {"key": MAINTENANCE_LOCK},
            )
            assert vacuum.vacuum(database, at_least=20) == ([], [], [])
        assert vacuum.vacuum(database, at_least=20).tables == ["rooms"]
