"""The event log: appending events whose ids are new, what is stored under the others, and a
room's events in order for a rebuild."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, select

from roomlog.domain.engine import Stamped, Wide
from roomlog.domain.events import JOINED, ROOM_ENDED, PresenceEvent, RoomEvent
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


# `events.joined` of a room end and of a snapshot.
ROOM_END: Final = 2
SNAPSHOT: Final = 3
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def room_content(event: RoomEvent) -> tuple[Any, ...]:
    """A room-wide event as the log stores it, less its id."""
    kind = ROOM_END if event.type == ROOM_ENDED else SNAPSHOT
    return (event.room, kind, event.at, [list(p) for p in event.people])


def append_room_events(
    connection: Connection, insert: Any, project_id: int, found: list[RoomEvent], now: int
) -> tuple[set[str], dict[str, tuple[Any, ...]]]:
    """Append those of the room-wide events `found` whose ids are new to the log; the ids
    appended, and the content stored under the others (presence events' included)."""
    ids = sorted({e.id for e in found})
    stored: dict[str, tuple[Any, ...]] = {}
    rows = connection.execute(
        select(events.c.id, events.c.room, events.c.joined, events.c.at, events.c.people).where(
            events.c.project_id == project_id, events.c.id.in_(ids)
        )
    )
    for eid, room, joined, at, people in rows:
        listed = _decode(people) if people else []
        stored[eid] = (room, joined, at, listed) if joined >= ROOM_END else ("presence", eid)
    new: dict[str, dict[str, Any]] = {}
    for event in found:
        if event.id not in stored and event.id not in new:
            room, kind, at, people = room_content(event)
            new[event.id] = {
                "project_id": project_id,
                "id": event.id,
                "room": room,
                "joined": kind,
                "participant_id": "",
                "user_id": None,
                "user_name": None,
                "at": at,
                "received_at": now,
                "people": _encode(people) if kind == SNAPSHOT else None,
            }
    if new:
        statement = (
            insert(events)
            .on_conflict_do_nothing(index_elements=["project_id", "id"])
            .returning(events.c.id)
        )
        # One row at a time (room-wide events are few), each answering whether it went in.
        written = sum(len(connection.execute(statement, row).all()) for row in new.values())
        if written != len(new):
            raise ConcurrentAppend(f"{len(new) - written} of {len(new)} room event ids were taken")
    return set(new), stored


def log_rows(
    first: dict[tuple[int, str], tuple[int, int, PresenceEvent]], now: int
) -> list[tuple[Any, ...]]:
    """The event-log rows of the events `first` (by project and id), received at `now`."""
    return [
        (
            pid,
            eid,
            event.room,
            1 if event.type == JOINED else 0,
            event.participant_id,
            event.user_id,
            event.user_name,
            event.at,
            now,
        )
        for (pid, eid), (_, _, event) in first.items()
    ]


def append(
    connection: Connection,
    sql: statements.Statements,
    rows: list[tuple[Any, ...]],
    keys: list[tuple[int, str]],
) -> tuple[set[tuple[int, str]], dict[tuple[int, str], tuple[Any, ...]]]:
    """Append the event `rows` (of `keys`) whose ids are new to the log.

    Returns the keys appended and the content stored under the others. SQLite (one
    writer at a time) appends them all with one driver `executemany` that skips the ids
    already stored; PostgreSQL copies them into a temporary table and moves them into the
    log with one statement, which answers which ones went in. Only if some did not are the
    others looked up. (The fastest of the methods `benchmarks/floors.py` measures, for each.)
    """
    if sql.sqlite:
        mark = statements.rows(connection, sql.last_row, ())[0][0]
        written = statements.run_many(connection, sql.append, rows)
        if written == len(rows):
            return set(keys), {}
        stored = existing(connection, sql, keys, before=mark)
        if len(stored) + written != len(keys):  # only another writer could have: there is one
            raise ConcurrentAppend(f"{written} of {len(keys)} appended, {len(stored)} were stored")
        return {key for key in keys if key not in stored}, stored
    inserted = {(pid, eid) for pid, eid in statements.copied(connection, sql, rows)}
    if len(inserted) == len(keys):
        return inserted, {}
    return inserted, existing(connection, sql, [k for k in keys if k not in inserted])


def existing(
    connection: Connection,
    sql: statements.Statements,
    keys: list[tuple[int, str]],
    before: int | None = None,
) -> dict[tuple[int, str], tuple[Any, ...]]:
    """The content stored under those of `keys` already in the event log (SQLite, `before`:
    in its rows up to that rowid)."""
    found: dict[tuple[int, str], tuple[Any, ...]] = {}
    by_project: defaultdict[int, list[str]] = defaultdict(list)
    for pid, eid in keys:
        by_project[pid].append(eid)
    for pid, ids in by_project.items():
        parameters: tuple[Any, ...] = (sql.keys(ids), pid)
        statement = sql.existing_keyed
        if before is not None:
            statement, parameters = sql.existing_before_keyed, (*parameters, before)
        for row in statements.rows(connection, statement, parameters):
            found[(pid, row[0])] = (row[1], bool(row[2]), *row[3:])
    return found


def room_events(
    connection: Connection, project_id: int, name: str, since: int | None = None
) -> list[Stamped]:
    """The events of room `name` (stamped at or after `since`), in the engine's form, oldest
    first."""
    query = (
        select(
            events.c.at,
            events.c.joined,
            events.c.participant_id,
            events.c.user_id,
            events.c.user_name,
        )
        .where(
            events.c.project_id == project_id,
            events.c.room == name,
            events.c.joined < ROOM_END,
            events.c.at >= (since if since is not None else 0),
        )
        .order_by(events.c.at)
    )
    return [
        (at * 2 + joined, pid, uid, uname)
        for at, joined, pid, uid, uname in connection.execute(query)
    ]


def room_wide(
    connection: Connection, project_id: int, name: str, since: int | None = None
) -> list[Wide]:
    """The room ends and snapshots of room `name` (stamped at or after `since`), in the
    engine's form and order."""
    query = select(events.c.at, events.c.joined, events.c.id, events.c.people).where(
        events.c.project_id == project_id,
        events.c.room == name,
        events.c.joined >= ROOM_END,
        events.c.at >= (since if since is not None else 0),
    )
    found: list[Wide] = [
        (
            at,
            joined - ROOM_END,
            eid,
            tuple((p[0], p[1], p[2]) for p in _decode(people)) if people else (),
        )
        for at, joined, eid, people in connection.execute(query)
    ]
    return sorted(found, key=lambda w: (w[0], w[1], w[2]))
