"""The write path's statements in each database's own SQL, run on the driver's connection.

The writer runs a handful of statements per transaction, and per event or room touched;
through SQLAlchemy's execution layer each one costs several times what the database spends
on it. These go straight to the DBAPI cursor under the transaction's connection (same
transaction, same commit). A list of keys is one parameter: a JSON array read by
`json_each` in SQLite, an array unnested in PostgreSQL, so each statement is one text however
many keys it carries and no lookup is split into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
from sqlalchemy import Connection

_EVENT_COLUMNS: Final = (
    "project_id, id, room, joined, participant_id, user_id, user_name, at, received_at"
)
# The log's columns as `COPY ... (FORMAT BINARY)` sends them (varchar is sent as text).
_EVENT_TYPES: Final = ("int4", "text", "text", "int2", "text", "text", "text", "int8", "int8")
# What a stored session's update may change. Its id names its room and start
# (`domain.sessions.session_id`), so those stay as they are, and SQLite need not rewrite the
# entries of the indexes on them (it rewrites those of every column an update sets).
_SESSION_CHANGES: Final = (
    "end_at",
    "max_participants",
    "participant_count",
    "participants",
    "attended",
)
_UPSERT_SESSIONS: Final = (
    "INSERT INTO sessions (project_id, id, room, start_at, end_at, max_participants,"
    " participant_count, participants, attended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (project_id, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _SESSION_CHANGES)
)
_WRITE_ROOMS: Final = (
    "UPDATE rooms SET state = ?, due_at = ?, occupancy = ?, presence = ?, session_count = ?,"
    " version = ? WHERE project_id = ? AND name = ?"
)
_NEW_ROOMS: Final = (
    "INSERT INTO rooms (project_id, name, state, due_at, occupancy, presence, session_count,"
    " version) VALUES (?, ?, ?, NULL, 0, ?, 0, 0) ON CONFLICT (project_id, name) DO NOTHING"
)
_DELETE_SESSIONS: Final = "DELETE FROM sessions WHERE project_id = ? AND id = ?"
_SUBSCRIBERS: Final = "SELECT id, event_types FROM webhooks WHERE project_id = ?"
_EVENT_CONTENT: Final = "id, room, joined, participant_id, user_id, user_name, at"
_TAKE_PENDING: Final = (
    "SELECT id, project_id, events FROM pending WHERE part = ? ORDER BY id LIMIT ?"
)
_DEFER: Final = "INSERT INTO pending (part, project_id, received_at, events) VALUES (?, ?, ?, ?)"
_WAITING: Final = "SELECT part, min(received_at) FROM pending GROUP BY part"
_ADD_HELD: Final = "INSERT INTO room_held (project_id, room, seq, events) VALUES (?, ?, ?, ?)"
_DROP_HELD: Final = "DELETE FROM room_held WHERE project_id = ? AND room = ?"
_KEEP: Final = (
    "INSERT INTO checkpoints (project_id, room, at, state, settled) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (project_id, room, at) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Statements:
    """One dialect's statements. Those named `*_keyed` take a key list (`keys`) first."""

    sqlite: bool
    # SQLite: one `executemany` of rows. PostgreSQL: the rows are copied (`COPY`) into a
    # temporary table (`stage`, made once per connection), then moved into the log by one
    # statement that answers the (project_id, id) of the rows it appended.
    append: str
    existing_keyed: str
    locked_keyed: str
    states_keyed: str
    # A room's held events (`schema.room_held`): its chunks in order, one appended, all dropped.
    held_keyed: str
    add_held: str
    drop_held: str
    new_rooms: str
    subscribers: str
    upsert_sessions: str
    delete_sessions: str
    write_rooms: str
    # The appliers' own: a partition's lease (locked until the transaction ends), its
    # pending rows, and the checkpoints settling keeps.
    holds: str
    take_pending: str
    defer: str
    waiting: str
    pending_count_keyed: str
    forget_keyed: str
    keep: str
    stage: str = ""
    copy: str = ""
    # SQLite: the log's last rowid before an append, and `existing_keyed` for the rows up to
    # it. A new row's rowid is one above the largest (SQLite's rule while it stays below
    # 2**63), and the writer appends alone: the rows past the mark are this append's.
    last_row: str = ""
    existing_before_keyed: str = ""

    def keys(self, values: list[str] | list[int]) -> Any:
        """`values` as the one parameter a `*_keyed` statement takes for its key list."""
        return msgspec.json.encode(values).decode() if self.sqlite else values


def _postgres(sql: str) -> str:
    return sql.replace("?", "%s")


SQLITE: Final = Statements(
    sqlite=True,
    append=(
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (project_id, id) DO NOTHING"
    ),
    existing_keyed=(
        f"SELECT {_EVENT_CONTENT} FROM events"
        " WHERE id IN (SELECT value FROM json_each(?)) AND project_id = ?"
    ),
    # No row locks in SQLite: `BEGIN IMMEDIATE` already made the transaction the only writer.
    locked_keyed=(
        "SELECT name, version FROM rooms"
        " WHERE name IN (SELECT value FROM json_each(?)) AND project_id = ? ORDER BY name"
    ),
    states_keyed=(
        "SELECT name, state FROM rooms"
        " WHERE name IN (SELECT value FROM json_each(?)) AND project_id = ?"
    ),
    held_keyed=(
        "SELECT room, events FROM room_held"
        " WHERE room IN (SELECT value FROM json_each(?)) AND project_id = ? ORDER BY room, seq"
    ),
    add_held=_ADD_HELD,
    drop_held=_DROP_HELD,
    new_rooms=_NEW_ROOMS,
    subscribers=_SUBSCRIBERS,
    upsert_sessions=_UPSERT_SESSIONS,
    delete_sessions=_DELETE_SESSIONS,
    write_rooms=_WRITE_ROOMS,
    holds="SELECT holder, lease_until FROM partitions WHERE part = ?",
    take_pending=_TAKE_PENDING,
    defer=_DEFER,
    waiting=_WAITING,
    pending_count_keyed="SELECT count(*) FROM pending WHERE id IN (SELECT value FROM json_each(?))",
    forget_keyed="DELETE FROM pending WHERE id IN (SELECT value FROM json_each(?))",
    keep=_KEEP,
    last_row="SELECT coalesce(max(rowid), 0) FROM events",
    existing_before_keyed=(
        f"SELECT {_EVENT_CONTENT} FROM events"
        " WHERE id IN (SELECT value FROM json_each(?)) AND project_id = ? AND rowid <= ?"
    ),
)

# Lookups by many keys probe the primary key once per key: a lateral subquery with `LIMIT 1`
# (harmless on a unique key) is not flattened into a join, which the planner, misled by a
# table filled since its last statistics, would run by reading every row of the project.
# Room rows are locked in the order of the keys, which every caller sorts.
POSTGRES: Final = Statements(
    sqlite=False,
    # Sorted, so that concurrent appends of overlapping ids take the index's locks in one order.
    append=(
        f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM staged_events"
        " ORDER BY project_id, id ON CONFLICT (project_id, id) DO NOTHING RETURNING project_id, id"
    ),
    stage=(
        "CREATE TEMPORARY TABLE IF NOT EXISTS staged_events"
        " (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    ),
    copy=f"COPY staged_events ({_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)",
    existing_keyed=(
        f"SELECT e.* FROM unnest(%s::text[]) AS k(id) CROSS JOIN LATERAL (SELECT {_EVENT_CONTENT}"
        " FROM events WHERE project_id = %s::int AND id = k.id LIMIT 1) AS e"
    ),
    locked_keyed=(
        "SELECT r.* FROM unnest(%s::text[]) AS k(name) CROSS JOIN LATERAL (SELECT name, version"
        " FROM rooms WHERE project_id = %s::int AND name = k.name LIMIT 1 FOR UPDATE) AS r"
    ),
    states_keyed=(
        "SELECT r.* FROM unnest(%s::text[]) AS k(name) CROSS JOIN LATERAL (SELECT name, state"
        " FROM rooms WHERE project_id = %s::int AND name = k.name LIMIT 1) AS r"
    ),
    held_keyed=(
        "SELECT h.room, h.events FROM unnest(%s::text[]) AS k(name) CROSS JOIN LATERAL"
        " (SELECT room, seq, events FROM room_held WHERE project_id = %s::int AND room = k.name)"
        " AS h ORDER BY h.room, h.seq"
    ),
    add_held=_postgres(_ADD_HELD),
    drop_held=_postgres(_DROP_HELD),
    new_rooms=_postgres(_NEW_ROOMS),
    subscribers=_postgres(_SUBSCRIBERS),
    upsert_sessions=_postgres(_UPSERT_SESSIONS),
    delete_sessions=_postgres(_DELETE_SESSIONS),
    write_rooms=_postgres(_WRITE_ROOMS),
    holds="SELECT holder, lease_until FROM partitions WHERE part = %s FOR UPDATE",
    take_pending=_postgres(_TAKE_PENDING),
    defer=_postgres(_DEFER),
    waiting=_WAITING,
    pending_count_keyed="SELECT count(*) FROM pending WHERE id = ANY(%s::bigint[])",
    forget_keyed="DELETE FROM pending WHERE id = ANY(%s::bigint[])",
    keep=_postgres(_KEEP),
)


def of(connection: Connection) -> Statements:
    """The statements of `connection`'s database."""
    return SQLITE if connection.dialect.name == "sqlite" else POSTGRES


def rows(connection: Connection, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows `sql` answers, run on the driver's connection under `connection`."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        # Both drivers answer a list of tuples already.
        found = cast("list[tuple[Any, ...]]", cursor.fetchall())
    finally:
        cursor.close()
    return found


def run(connection: Connection, sql: str, parameters: tuple[Any, ...]) -> int:
    """Run `sql` once; the rows it changed."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        changed: int = cursor.rowcount
    finally:
        cursor.close()
    return changed


def run_many(connection: Connection, sql: str, parameters: list[tuple[Any, ...]]) -> int:
    """Run `sql` once per parameter row; the rows it changed in all."""
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        changed: int = cursor.rowcount
    finally:
        cursor.close()
    return changed


def copied(
    connection: Connection, sql: Statements, rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """PostgreSQL: append the event `rows` through the staging table; the keys appended."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql.stage)
        with cursor.copy(sql.copy) as copy:
            copy.set_types(list(_EVENT_TYPES))
            for row in rows:
                copy.write_row(row)
        cursor.execute(sql.append)
        found = cast("list[tuple[Any, ...]]", cursor.fetchall())
    finally:
        cursor.close()
    return found
