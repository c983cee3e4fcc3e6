"""The vacuumer: a thread on every server on PostgreSQL, which counts its vacuums and rests a
table that an open transaction keeps dead."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from roomlog import metrics
from roomlog.store import vacuum
from roomlog.store.db import migrate, open_database
from roomlog.workers.vacuumer import Vacuumer
from tests.fixtures import POSTGRES_URL, Api, scratch_database
from tests.store.test_vacuum import once_counted, rewrite_rooms, rewritten


def test_the_vacuumer_counts_what_it_vacuumed_and_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with rewritten(tmp_path) as database:
        monkeypatch.setattr(
            "roomlog.workers.vacuumer.vacuum",
            lambda db, resting: vacuum.vacuum(db, 20, resting),
        )
        vacuums = metrics.labelled(metrics.VACUUMS, "rooms")
        analyses = metrics.labelled(metrics.ANALYSES, "rooms")
        before = vacuums._value.get(), analyses._value.get()
        assert Vacuumer(database).run_once() == ["rooms"]
        assert (vacuums._value.get(), analyses._value.get()) == (before[0] + 1, before[1] + 1)


def test_a_vacuum_an_open_transaction_defeats_rests_the_table_longer_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        database = open_database(url)
        migrate(database)
        monkeypatch.setattr(
            "roomlog.workers.vacuumer.vacuum",
            lambda db, resting: vacuum.vacuum(db, 20, resting),
        )
        now = [0.0]
        vacuumer = Vacuumer(database, every=2.0, clock=lambda: now[0])
        with psycopg.connect(POSTGRES_URL, autocommit=True) as old:
            # A snapshot taken before the rewrites (in any schema of the database) still
            # sees every version they replace.
            old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            old.execute("SELECT 1")
            rewrite_rooms(database, 30)
            assert once_counted(database, at_least=20) == ["rooms"]
            assert vacuum.vacuum(database, at_least=20) == (["rooms"], ["rooms"], ["rooms"])
            rests = []
            for _ in range(8):
                vacuumed = vacuumer.run_once()
                rests.append(vacuumer._resting["rooms"][1] if vacuumed else None)
                now[0] += 2.0
            # Vacuumed at 0 s (rest 4), 4 (8), 12 (16); left alone in between.
            assert rests == [4.0, None, 8.0, None, None, None, 16.0, None]
            old.execute("ROLLBACK")
        now[0] += 16.0
        assert vacuumer.run_once() == ["rooms"]
        assert "rooms" not in vacuumer._resting
        database.dispose()


def test_every_server_on_postgresql_runs_a_vacuumer_and_none_on_sqlite(api: Api) -> None:
    names = {thread.name for thread in threading.enumerate()}
    assert ("roomlog-vacuum" in names) == (not api.database.sqlite)


def test_on_sqlite_no_thread_starts(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        database = open_database(url)
        vacuumer = Vacuumer(database)
        vacuumer.start()
        assert not any(t.name == "roomlog-vacuum" for t in threading.enumerate())
        vacuumer.stop()
        database.dispose()
