"""The partitions' rows, made once by whichever transaction first needs them."""

from __future__ import annotations

import threading
import time

import psycopg
from sqlalchemy import func, select

from roomlog.store.db import Database
from roomlog.store.leases import partition_count
from roomlog.store.schema import partitions
from tests.fixtures import blocked_by


def test_transactions_finding_no_partitions_at_once_make_them_once(
    postgres_database: Database,
) -> None:
    """A server's writer threads and its applier (or servers starting together) all find a
    new database without partitions: one makes them, the others wait and take its count."""
    database = postgres_database
    found: list[int | BaseException] = []
    with database.engine.connect() as first:
        with first.begin():
            assert partition_count(first, 16) == 16

            def second() -> None:
                try:
                    with database.engine.begin() as connection:
                        found.append(partition_count(connection, 32))
                except BaseException as exc:  # the test reports it below
                    found.append(exc)

            waiting = threading.Thread(target=second)
            waiting.start()
            holder = first.connection.driver_connection
            assert isinstance(holder, psycopg.Connection)
            while not blocked_by(holder):  # the second transaction waits for the first
                assert waiting.is_alive(), found
                time.sleep(0.01)
        waiting.join(timeout=10)
    assert found == [16]
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(partitions)).scalar_one() == 16
