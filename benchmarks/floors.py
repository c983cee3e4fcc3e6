"""Floors for appending batches of events: the fastest this machine appends them with the
event log's guarantee, by several methods, so that a ratio to "the floor" is to the best of
them and not to one method.

The guarantee: each (project, event id) at most once, known to be new or repeated before the
answer, and committed (SQLite `synchronous=FULL` in WAL mode; PostgreSQL's default commit).
Every method appends the same batches, one commit per batch, into tables of its own; each
SQLite method runs twice, with SQLite's WAL copied back at its default and at roomlog's.

`benchmarks.ingest` runs them beside roomlog's own figures.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import psycopg

POSTGRES = os.environ.get("ROOMLOG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

Row = tuple[int, str, str, int, str, str | None, str | None, int, int]
Batch = list[Row]
_pack = msgspec.msgpack.Encoder().encode

_COLUMNS = "project_id, id, room, joined, participant_id, user_id, user_name, at, received_at"
_TABLE = (
    "project_id INTEGER NOT NULL, id TEXT NOT NULL, room TEXT NOT NULL, joined SMALLINT NOT NULL,"
    " participant_id TEXT NOT NULL, user_id TEXT, user_name TEXT, at BIGINT NOT NULL,"
    " received_at BIGINT NOT NULL, PRIMARY KEY (project_id, id)"
)
# The table's columns as `COPY ... (FORMAT BINARY)` sends them.
_BINARY_TYPES = ("int4", "text", "text", "int2", "text", "text", "text", "int8", "int8")
# The batch-blob layout: the unique ids alone, the batch's columns as one row, and one index
# row per (room, batch) to find a room's batches.
_IDS = "project_id INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (project_id, id)"
_BLOBS = "id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, events BYTEA NOT NULL"
_ROOM_BATCHES = "project_id INTEGER NOT NULL, room TEXT NOT NULL, batch BIGINT NOT NULL"


def rows_of(bodies: list[bytes], tag: str) -> list[Batch]:
    """The event-log rows of `bodies` (JSON arrays of native events), ids made unique by
    `tag`."""
    return [
        [
            (
                1,
                f"{tag}-{e['id']}",
                e["room"],
                int(e["type"] == "participant.joined"),
                e["participant_id"],
                e.get("user_id"),
                e.get("user_name"),
                round(float(e["at"]) * 1_000_000),
                0,
            )
            for e in json.loads(body)
        ]
        for body in bodies
    ]


def _check(written: int, batch: Batch) -> None:
    """Each method learns which ids were new: (a repeated delivery's are not)."""
    if not 0 < written <= len(batch):
        raise RuntimeError(f"{written} of {len(batch)} rows appended")


def _blob(batch: Batch) -> bytes:
    return _pack([list(column) for column in zip(*batch, strict=True)])


def _rooms(batch: Batch) -> list[str]:
    return sorted({row[2] for row in batch})


# -- SQLite ----------------------------------------------------------------------------------


@contextmanager
def _sqlite(folder: Path, wal_pages: int) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(folder / f"{uuid.uuid4().hex}.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
    try:
        yield connection
    finally:
        connection.close()


def _sqlite_rows(
    batches: list[Batch], folder: Path, room_index: bool, rowid: bool, wal_pages: int
) -> float:
    with _sqlite(folder, wal_pages) as db:
        db.execute(f"CREATE TABLE events ({_TABLE}){'' if rowid else ' WITHOUT ROWID'}")
        if room_index:
            db.execute("CREATE INDEX events_by_room ON events (project_id, room, at)")
        insert = (
            f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, id) DO NOTHING"
        )
        started = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.executemany(insert, batch)
            _check(cursor.rowcount, batch)
            db.execute("COMMIT")
        return time.perf_counter() - started


def _sqlite_blob(batches: list[Batch], folder: Path, wal_pages: int) -> float:
    with _sqlite(folder, wal_pages) as db:
        db.execute(f"CREATE TABLE ids ({_IDS}) WITHOUT ROWID")
        db.execute(f"CREATE TABLE blobs ({_BLOBS.replace('BYTEA', 'BLOB')})")
        db.execute(
            f"CREATE TABLE room_batches ({_ROOM_BATCHES}, PRIMARY KEY (project_id, room,"
            " batch)) WITHOUT ROWID"
        )
        started = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.executemany(
                "INSERT INTO ids VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(row[0], row[1]) for row in batch],
            )
            _check(cursor.rowcount, batch)
            blob = db.execute(
                "INSERT INTO blobs (project_id, events) VALUES (1, ?)", (_blob(batch),)
            ).lastrowid
            db.executemany(
                "INSERT INTO room_batches VALUES (1, ?, ?)", [(r, blob) for r in _rooms(batch)]
            )
            db.execute("COMMIT")
        return time.perf_counter() - started


# -- PostgreSQL ------------------------------------------------------------------------------


@contextmanager
def _postgres() -> Iterator[psycopg.Connection[Any]]:
    schema = f"floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            with psycopg.connect(POSTGRES, options=f"-csearch_path={schema}") as connection:
                yield connection
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _pg_table(db: psycopg.Connection[Any], room_index: bool) -> None:
    db.execute(f"CREATE TABLE events ({_TABLE})")
    if room_index:
        db.execute("CREATE INDEX events_by_room ON events (project_id, room, at)")
    db.commit()


def _pg_executemany(batches: list[Batch], room_index: bool) -> float:
    with _postgres() as db:
        _pg_table(db, room_index)
        insert = (
            f"INSERT INTO events ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (project_id, id) DO NOTHING"
        )
        started = time.perf_counter()
        for batch in batches:
            with db.cursor() as cursor:
                cursor.executemany(insert, batch)
                _check(cursor.rowcount, batch)
            db.commit()
        return time.perf_counter() - started


def _pg_unnest(batches: list[Batch], room_index: bool) -> float:
    with _postgres() as db:
        _pg_table(db, room_index)
        insert = (
            f"INSERT INTO events ({_COLUMNS}) SELECT * FROM unnest(%s::int[], %s::text[],"
            " %s::text[], %s::smallint[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
            " %s::bigint[]) ON CONFLICT (project_id, id) DO NOTHING RETURNING id"
        )
        started = time.perf_counter()
        for batch in batches:
            columns = [list(column) for column in zip(*batch, strict=True)]
            _check(len(db.execute(insert, columns).fetchall()), batch)
            db.commit()
        return time.perf_counter() - started


def _pg_copy(batches: list[Batch], room_index: bool, binary: bool = False) -> float:
    """COPY into a temporary table (`binary`: in COPY's binary format), then one `INSERT ...
    SELECT ... ON CONFLICT DO NOTHING RETURNING` into the log."""
    with _postgres() as db:
        _pg_table(db, room_index)
        db.execute("CREATE TEMPORARY TABLE staged (LIKE events) ON COMMIT DELETE ROWS")
        db.commit()
        insert = (
            "INSERT INTO events SELECT * FROM staged"
            " ON CONFLICT (project_id, id) DO NOTHING RETURNING id"
        )
        started = time.perf_counter()
        form = " (FORMAT BINARY)" if binary else ""
        for batch in batches:
            with db.cursor().copy(f"COPY staged ({_COLUMNS}) FROM STDIN{form}") as copy:
                if binary:
                    copy.set_types([*_BINARY_TYPES])
                for row in batch:
                    copy.write_row(row)
            _check(len(db.execute(insert).fetchall()), batch)
            db.commit()
        return time.perf_counter() - started


def _pg_blob(batches: list[Batch]) -> float:
    """The unique ids COPYed and inserted as above, the batch's columns as one row, and a
    (room, batch) row per room."""
    with _postgres() as db:
        db.execute(f"CREATE TABLE ids ({_IDS})")
        db.execute(f"CREATE TABLE blobs ({_BLOBS.replace('INTEGER PRIMARY', 'BIGSERIAL PRIMARY')})")
        db.execute(
            f"CREATE TABLE room_batches ({_ROOM_BATCHES}, PRIMARY KEY (project_id, room, batch))"
        )
        db.execute("CREATE TEMPORARY TABLE staged (LIKE ids) ON COMMIT DELETE ROWS")
        db.commit()
        started = time.perf_counter()
        for batch in batches:
            with db.cursor().copy("COPY staged FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row[:2])
            found = db.execute(
                "INSERT INTO ids SELECT * FROM staged ON CONFLICT DO NOTHING RETURNING id"
            ).fetchall()
            _check(len(found), batch)
            blob = db.execute(
                "INSERT INTO blobs (project_id, events) VALUES (1, %s) RETURNING id",
                (_blob(batch),),
            ).fetchone()
            assert blob is not None
            db.execute(
                "INSERT INTO room_batches SELECT 1, r, %s FROM unnest(%s::text[]) AS r",
                (blob[0], _rooms(batch)),
            )
            db.commit()
        return time.perf_counter() - started


def floors(bodies: list[bytes], postgres: bool = True) -> dict[str, float]:
    """Events/s of each method over the same batches, keyed by a description; PostgreSQL's
    are left out when `postgres` is false or the server cannot be reached."""
    batches = rows_of(bodies, uuid.uuid4().hex[:8])
    count = sum(len(batch) for batch in batches)
    methods: dict[str, Callable[[], float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        # Each SQLite method as SQLite copies its WAL back by default (every 1,000 pages) and
        # as roomlog has it do (every 10,000: `store/db.py` `WAL_PAGES`).
        for pages, named in ((1_000, ""), (10_000, ", WAL copied back every 10,000 pages")):
            methods |= {
                f"SQLite: executemany, unique and room indexes (the log's layout){named}": partial(
                    _sqlite_rows, batches, folder, True, True, pages
                ),
                f"SQLite: executemany, the unique index only{named}": partial(
                    _sqlite_rows, batches, folder, False, True, pages
                ),
                f"SQLite: executemany, the unique index only, WITHOUT ROWID{named}": partial(
                    _sqlite_rows, batches, folder, False, False, pages
                ),
                f"SQLite: unique ids + one blob per batch + (room, batch) rows{named}": partial(
                    _sqlite_blob, batches, folder, pages
                ),
            }
        figures = {name: count / run() for name, run in methods.items()}
    if postgres:
        try:
            psycopg.connect(POSTGRES).close()
        except psycopg.Error as exc:
            print(f"PostgreSQL floors skipped: {exc}")
            return figures
        pg: dict[str, Callable[[], float]] = {
            "PostgreSQL: executemany, unique and room indexes": lambda: _pg_executemany(
                batches, True
            ),
            "PostgreSQL: unnest arrays, unique and room indexes": lambda: _pg_unnest(batches, True),
            "PostgreSQL: COPY + INSERT ON CONFLICT, unique and room indexes": lambda: _pg_copy(
                batches, True
            ),
            "PostgreSQL: COPY + INSERT ON CONFLICT, the unique index only": lambda: _pg_copy(
                batches, False
            ),
            "PostgreSQL: binary COPY + INSERT ON CONFLICT, unique and room indexes": lambda: (
                _pg_copy(batches, True, binary=True)
            ),
            "PostgreSQL: binary COPY + INSERT ON CONFLICT, the unique index only": lambda: _pg_copy(
                batches, False, binary=True
            ),
            "PostgreSQL: unique ids + one blob per batch + (room, batch) rows": lambda: _pg_blob(
                batches
            ),
        }
        figures.update({name: count / run() for name, run in pg.items()})
    return figures


def best(figures: dict[str, float], database: str) -> tuple[str, float]:
    """The fastest of `figures` for `database` ("SQLite" or "PostgreSQL")."""
    return max(
        ((name, rate) for name, rate in figures.items() if name.startswith(database)),
        key=lambda item: item[1],
    )
