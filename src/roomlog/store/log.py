"""The event log: appending events whose ids are new, what is stored under the others, and a
room's events in order for a rebuild."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from roomlog.domain.engine import Stamped
from roomlog.domain.events import JOINED, PresenceEvent
from roomlog.store import statements
from roomlog.store.schema import events
from roomlog.store.transactions import ConcurrentAppend


def content(event: PresenceEvent) -> tuple[Any, ...]:
    """An event as the log stores it, less its id: what a repeated id is compared by."""
    return (
        event.room,
        event.type == JOINED,
        event.participant_id,
        event.user_id,
        event.user_name,
        event.at,
    )


def append(
    connection: Connection,
    sql: statements.Statements,
    rows: list[tuple[Any, ...]],
    keys: list[tuple[int, str]],
) -> tuple[set[tuple[int, str]], dict[tuple[int, str], tuple[Any, ...]]]:
    """Append the event `rows` (of `keys`) whose ids are new to the log.

    Returns the keys appended and the content stored under the others. SQLite (one
    writer at a time) looks the ids up, then appends the rest with one driver
    `executemany`; PostgreSQL appends all the rows in one statement over arrays, which
    answers which ones went in, and only then looks up the others.
    """
    if not sql.sqlite:
        inserted = {
            (pid, eid) for pid, eid in statements.rows(connection, sql.append, _columns(rows))
        }
        return inserted, existing(connection, sql, [k for k in keys if k not in inserted])
    stored = existing(connection, sql, keys)
    new = [row for row in rows if (row[0], row[1]) not in stored]
    if new:
        written = statements.run_many(connection, sql.append, new)
        if written != len(new):  # only another writer could have, and SQLite has one
            raise ConcurrentAppend(f"{len(new) - written} of {len(new)} ids were taken")
    return {(row[0], row[1]) for row in new}, stored


def existing(
    connection: Connection, sql: statements.Statements, keys: list[tuple[int, str]]
) -> dict[tuple[int, str], tuple[Any, ...]]:
    """The content stored under those of `keys` already in the event log."""
    found: dict[tuple[int, str], tuple[Any, ...]] = {}
    by_project: defaultdict[int, list[str]] = defaultdict(list)
    for pid, eid in keys:
        by_project[pid].append(eid)
    for pid, ids in by_project.items():
        for row in statements.rows(connection, sql.existing_keyed, (sql.keys(ids), pid)):
            found[(pid, row[0])] = (row[1], bool(row[2]), *row[3:])
    return found


def room_events(connection: Connection, project_id: int, name: str) -> list[Stamped]:
    """Every event of room `name`, in the engine's form, oldest first."""
    query = (
        select(
            events.c.at,
            events.c.joined,
            events.c.participant_id,
            events.c.user_id,
            events.c.user_name,
        )
        .where(events.c.project_id == project_id, events.c.room == name)
        .order_by(events.c.at)
    )
    return [
        (at * 2 + joined, pid, uid, uname)
        for at, joined, pid, uid, uname in connection.execute(query)
    ]


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as one list per column (PostgreSQL arrays)."""
    return tuple(list(column) for column in zip(*rows, strict=True))
