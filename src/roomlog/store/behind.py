"""Applying behind the log: the write path appends events and hands them to their rooms'
partitions (`defer`); each partition's applier applies them later (`apply_pending`), in
order, in transactions of their own, and deletes them from `pending` as it does."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Final

import msgspec
from sqlalchemy import Connection, insert, select

from roomlog.domain.engine import Stamped
from roomlog.domain.events import JOINED, EventType, PresenceEvent
from roomlog.store.leases import forget, holds, part_of, partition_count
from roomlog.store.schema import pending
from roomlog.store.transactions import retrying

if TYPE_CHECKING:
    from roomlog.store.store import Store

# `pending` rows one applier transaction takes at most.
APPLY_ROWS: Final = 64
_encode = msgspec.msgpack.Encoder().encode
_decode_rows = msgspec.msgpack.Decoder(
    list[tuple[str, EventType, str, str, int, str | None, str | None]]
).decode


def defer(
    store: Store,
    connection: Connection,
    stored: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
    inserted: set[tuple[int, str]],
    now: int,
) -> None:
    """Hand the appended events to their partitions: one `pending` row per project and
    partition, holding its events in the order they came in."""
    count = partitions(store, connection)
    groups: defaultdict[tuple[int, int], list[PresenceEvent]] = defaultdict(list)
    parts: dict[tuple[int, str], int] = {}
    for key, (_, _, event) in stored.items():
        if key not in inserted:
            continue
        where = (key[0], event.room)
        part = parts.get(where)
        if part is None:
            part = parts[where] = part_of(key[0], event.room, count)
        groups[(key[0], part)].append(event)
    rows = [
        {"part": part, "project_id": pid, "received_at": now, "events": _encode(found)}
        for (pid, part), found in groups.items()
    ]
    if rows:  # (an empty list would insert one row of defaults)
        connection.execute(insert(pending), rows)


def partitions(store: Store, connection: Connection) -> int:
    """The database's partition count, read once per store."""
    if store.parts is None:
        store.parts = partition_count(connection, store.settings.partitions)
    return store.parts


@retrying
def apply_pending(store: Store, part: int, holder: str | None, now: int, wall: int) -> int:
    """Apply the oldest pending events of partition `part` (if `holder` still holds it at
    wall-clock `wall`; None: whoever holds it) in one transaction; how many rows it took."""
    store._here.queued = 0
    store._here.written = {}
    with store.turn, store.transactions.begin() as connection:
        if holder is not None and not holds(connection, holder, part, wall):
            return 0
        rows = connection.execute(
            select(pending.c.id, pending.c.project_id, pending.c.events)
            .where(pending.c.part == part)
            .order_by(pending.c.id)
            .limit(APPLY_ROWS)
        ).all()
        if not rows:
            return 0
        projects = sorted({pid for _, pid, _ in rows})
        subs = {pid: store._subscribers(connection, pid) for pid in projects}
        # The engine's form of each event, straight from the row's fields (this loop is a
        # good part of an applier's time); events only for the projects with webhooks.
        stored: dict[tuple[int, str], tuple[int, int, PresenceEvent]] = {}
        seen: set[tuple[int, str]] = set()
        fresh: defaultdict[tuple[int, str], list[Stamped]] = defaultdict(list)
        for _, pid, blob in rows:
            announced = bool(subs[pid])
            for fields in _decode_rows(blob):
                key = (pid, fields[0])
                if key in seen:
                    continue
                seen.add(key)
                _, kind, room, participant, at, user_id, user_name = fields
                fresh[(pid, room)].append(
                    (at * 2 + (kind == JOINED), participant, user_id, user_name)
                )
                if announced:
                    stored[key] = (0, 0, PresenceEvent(*fields))
        store._update_rooms(connection, fresh, {}, now, subs)
        if stored:
            store._announce_participants(connection, stored, set(stored), now, subs)
        forget(connection, [row[0] for row in rows])
    store._committed()
    store._announced()
    return len(rows)
