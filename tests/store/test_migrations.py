"""Upgrading a database made by an earlier version keeps what it holds and fills new columns."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from roomlog.domain.events import MICROS
from roomlog.domain.sessions import Attendance, MeetingSession
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.projects import find_project
from roomlog.store.rooms import encode_participants
from roomlog.store.schema import rooms, sessions
from tests.fixtures import drop_postgres, fresh_postgres

lz4 = importlib.import_module("roomlog.store.migrations.versions.0010_lz4")


def upgraded_to(
    database_url: str, revision: str, step: Callable[[Config, str], None] = command.upgrade
) -> Database:
    """The database at `database_url` with the schema of `revision` (or, with `step`
    `command.downgrade`, brought down to it)."""
    database = open_database(database_url)
    config = Config()
    config.set_main_option("script_location", "roomlog.store:migrations")
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config, revision)
    return database


def test_upgrading_from_0002_fills_each_sessions_closed_participant_time(
    database_url: str,
) -> None:
    database = upgraded_to(database_url, "0002")
    made = MeetingSession(
        "s-1",
        "r",
        0,
        None,
        2,
        (
            Attendance("A", None, None, 0, 900 * MICROS),
            Attendance("B", None, None, 100 * MICROS, 200 * MICROS),
            Attendance("B", None, None, 300 * MICROS, None),
        ),
    )
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO sessions (project_id, id, room, start_at, end_at, max_participants, "
            "participant_count, participants) VALUES (1, 's-1', 'r', 0, NULL, 2, 2, :blob)"
            if database.sqlite
            else "INSERT INTO sessions (project_id, id, room, start_at, end_at, max_participants, "
            "participant_count, participants) VALUES (1, 's-1', 'r', 0, NULL, 2, 2, %(blob)s)",
            {"blob": encode_participants(made)},
        )
    migrate(database)
    with database.engine.connect() as connection:
        attended = connection.execute(select(sessions.c.attended)).scalar_one()
    database.dispose()
    assert attended == 1000 * MICROS  # the open presence is counted when read, not here


def test_upgrading_from_0003_gives_each_room_a_version_and_keeps_its_state(
    database_url: str,
) -> None:
    database = upgraded_to(database_url, "0003")
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO rooms (project_id, name, state, due_at, occupancy, presence,"
            " session_count) VALUES (1, 'r', '', NULL, 0, '', 3)"
        )
    migrate(database)
    with database.engine.connect() as connection:
        row = connection.execute(select(rooms.c.version, rooms.c.session_count)).one()
    database.dispose()
    assert tuple(row) == (0, 3)


def test_upgrading_from_0004_keys_every_project_by_user_id(database_url: str) -> None:
    database = upgraded_to(database_url, "0004")
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO projects (name, public_id, secret, created_at)"
            " VALUES ('old', 'pk_old', 'secret', 0)"
        )
    migrate(database)
    with database.engine.connect() as connection:
        project = find_project(connection, "old")
    database.dispose()
    assert project is not None
    assert (project.name, project.person_key) == ("old", "user_id")


def _compression(url: str) -> set[str]:
    """The compression methods of the columns migration 0010 names ('' for the server's
    default, 'l' for LZ4, 'p' for pglz)."""
    query = "SELECT attcompression FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s"
    with psycopg.connect(url) as connection:
        return {
            str(row[0])
            for table, column in lz4.COLUMNS
            for row in connection.execute(query, (table, column))
        }


def test_on_postgresql_the_appliers_large_values_are_compressed_with_lz4(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url) as connection:
        methods = connection.execute(
            "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
        ).fetchone()
    if methods is None or "lz4" not in methods[0]:
        pytest.skip("this PostgreSQL has no LZ4 (version 14 or later, built with it)")
    url = fresh_postgres(postgres_url)
    try:
        upgraded_to(url, "0009").dispose()
        assert _compression(url) == {""}
        upgraded_to(url, "head").dispose()
        assert _compression(url) == {"l"}
        upgraded_to(url, "0009", command.downgrade).dispose()
        assert _compression(url) == {"p"}
    finally:
        drop_postgres(postgres_url, url)
