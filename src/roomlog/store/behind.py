"""Applying behind the log: the write path appends events and hands them to their rooms'
partitions (`defer`); each partition's applier applies them later (`apply_pending`), in
order, in transactions of their own, and deletes them from `pending` as it does."""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from typing import TYPE_CHECKING, Final, cast

import msgspec
from sqlalchemy import Connection

from roomlog.domain.engine import Stamped
from roomlog.domain.events import JOINED, EventType, PresenceEvent
from roomlog.store import statements
from roomlog.store.leases import forget, holds, part_of, partition_count
from roomlog.store.outbox import Subscriber
from roomlog.store.transactions import retrying

if TYPE_CHECKING:
    from roomlog.store.store import Store

# `pending` rows one applier transaction takes at most from a partition.
APPLY_ROWS: Final = 64
# Events after which a transaction applying several partitions (`apply_parts`) takes no more
# of them, so that it holds SQLite's write lock no longer than one partition's batches do.
APPLY_EVENTS: Final = 2_000
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
    rows = [(part, pid, now, _encode(found)) for (pid, part), found in groups.items()]
    if rows:
        statements.run_many(connection, store._sql.defer, rows)


def partitions(store: Store, connection: Connection) -> int:
    """The database's partition count, read once per store."""
    if store.parts is None:
        store.parts = partition_count(connection, store.settings.partitions)
    return store.parts


class _Moved(Exception):
    """A room or a pending row changed between an applier's read and its write."""


@retrying
def apply_pending(store: Store, part: int, holder: str | None, now: int, wall: int) -> int:
    """Apply the oldest pending events of partition `part` (if `holder` still holds it at
    wall-clock `wall`; None: whoever holds it) in one transaction; how many rows it took.

    On SQLite, whose one writer at a time is also the server's, the events are first applied
    from a snapshot with no lock held, and the lock is taken only to check that none of
    their rooms moved since and to write (`_read_first`): a room re-derived from its log
    then keeps no one else waiting. If one moved, it is all done again under the lock."""
    if store.database.sqlite:
        try:
            return _read_first(store, [part], holder, now, wall)[part]
        except _Moved:
            pass
    store._here.queued = 0
    store._here.written = {}
    # On PostgreSQL the rooms' row locks, taken in order, keep two transactions apart, as
    # they do between processes: the applier's threads apply side by side.
    turn = store.turn if store.database.sqlite else nullcontext()
    with turn, store.transactions.begin(derived=True) as connection:
        taken = _take(store, connection, part, holder, wall)
        if taken is None:
            return 0
        rows, subs, fresh, stored = taken
        store._update_rooms(connection, fresh, {}, now, subs)
        if stored:
            store._announce_participants(connection, stored, set(stored), now, subs)
        forget(connection, [row[0] for row in rows])
    store._committed()
    store._announced()
    return len(rows)


def apply_parts(
    store: Store, parts: list[int], holder: str | None, now: int, wall: int
) -> dict[int, int]:
    """Apply the oldest pending events of several partitions: on SQLite, in one transaction
    (read first, as `apply_pending` does), so that they share one commit and the pages it
    writes. The partitions are taken in order until they hold `APPLY_EVENTS` events or one
    has a backlog (`APPLY_ROWS` rows or more waiting: it goes alone, first in the next
    transaction if others came before it). Returns the rows taken from each partition
    looked at (0: none pending); those not taken are left out. If a room or a partition
    changed hands meanwhile, each is applied on its own."""
    if store.database.sqlite and len(parts) > 1:
        try:
            return _together(store, parts, holder, now, wall)
        except _Moved:
            pass
    return {part: apply_pending(store, part, holder, now, wall) for part in parts}


def _read_first(
    store: Store, parts: list[int], holder: str | None, now: int, wall: int
) -> dict[int, int]:
    store._here.queued = 0
    store._here.written = {}
    taken: dict[int, int] = {}
    rows: _Rows = []
    subs: dict[int, list[Subscriber]] = {}
    fresh: _Fresh = defaultdict(list)
    stored: _Stored = {}
    events = 0
    with store.database.reader.connect() as reading, reading.begin():
        for part in parts:
            found = _take(store, reading, part, holder, wall)
            backlog = found is not None and len(found[0]) == APPLY_ROWS
            if rows and (backlog or events >= APPLY_EVENTS):
                break  # it and the others wait for the next transaction
            taken[part] = 0 if found is None else len(found[0])
            if found is not None:  # partitions hold rooms of their own: nothing is merged
                rows += found[0]
                subs.update(found[1])
                fresh.update(found[2])
                stored.update(found[3])
                events += sum(map(len, found[2].values()))
            if backlog:
                break  # a partition with a backlog goes alone, as `apply_pending` takes it
        if not rows:
            return taken
        by_project: defaultdict[int, list[str]] = defaultdict(list)
        for pid, name in sorted(fresh):
            by_project[pid].append(name)
        plans = {}
        for pid, names in by_project.items():
            seen = dict.fromkeys(names, 0) | store._locked(reading, pid, names)
            plans[pid] = (seen, store._plan(reading, pid, seen, fresh, {}, now))
    ids = [row[0] for row in rows]
    applying = [part for part, count in taken.items() if count]
    with store.turn, store.transactions.begin(derived=True) as connection:
        if holder is not None and not all(holds(connection, holder, p, wall) for p in applying):
            if len(applying) > 1:
                raise _Moved("a partition changed hands meanwhile")
            return dict.fromkeys(taken, 0)
        sql = store._sql
        found_rows = statements.rows(connection, sql.pending_count_keyed, (sql.keys(ids),))
        if found_rows[0][0] != len(ids):
            raise _Moved("pending rows were applied meanwhile")
        for pid, (seen, writes) in plans.items():
            if store._lock_rooms(connection, pid, list(seen)) != seen:
                raise _Moved("a room was written meanwhile")
            store._write_plan(connection, pid, writes, seen, now, subs[pid])
        if stored:
            store._announce_participants(connection, stored, set(stored), now, subs)
        forget(connection, ids)
    store._committed()
    store._announced()
    return taken


_together = retrying(_read_first)


_Rows = list[tuple[int, int, bytes]]
_Fresh = defaultdict[tuple[int, str], list[Stamped]]
_Stored = dict[tuple[int, str], tuple[int, int, PresenceEvent]]


def _take(
    store: Store, connection: Connection, part: int, holder: str | None, wall: int
) -> tuple[_Rows, dict[int, list[Subscriber]], _Fresh, _Stored] | None:
    """The oldest pending rows of partition `part` (as many as one transaction applies), who
    listens in their projects, and their events decoded (`_decoded`); None if `holder` no
    longer holds the partition or nothing is pending."""
    if holder is not None and not holds(connection, holder, part, wall):
        return None
    rows = cast("_Rows", statements.rows(connection, store._sql.take_pending, (part, APPLY_ROWS)))
    if not rows:
        return None
    subs = {pid: store._subscribers(connection, pid) for pid in sorted({r[1] for r in rows})}
    return rows, subs, *_decoded(rows, subs)


def _decoded(rows: _Rows, subs: dict[int, list[Subscriber]]) -> tuple[_Fresh, _Stored]:
    """The engine's form of each pending event by room, straight from the row's fields
    (this loop is a good part of an applier's time); and the events themselves for the
    projects with webhooks."""
    stored: _Stored = {}
    seen: set[tuple[int, str]] = set()
    fresh: _Fresh = defaultdict(list)
    for _, pid, blob in rows:
        announced = bool(subs[pid])
        for fields in _decode_rows(blob):
            key = (pid, fields[0])
            if key in seen:
                continue
            seen.add(key)
            _, kind, room, participant, at, user_id, user_name = fields
            fresh[(pid, room)].append((at * 2 + (kind == JOINED), participant, user_id, user_name))
            if announced:
                stored[key] = (0, 0, PresenceEvent(*fields))
    return fresh, stored
