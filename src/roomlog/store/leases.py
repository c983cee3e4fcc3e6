"""Partitions of rooms and their leases: which process applies which rooms' events.

A room belongs to partition `crc32(project, room) mod P`. Each partition has a row in
`partitions`; the process whose lease it holds applies the partition's pending events and
the passage of time in its rooms. A process renews its leases every second or so; one that
dies loses them when they expire (5 s by default), and another takes them over. Claims take
free or expired partitions (`FOR UPDATE SKIP LOCKED` on PostgreSQL), at most a fair share
of them: the partitions divided among the processes holding leases now. A process holding
more than its share (another one started) gives the excess up.
"""

from __future__ import annotations

import math
import zlib

from sqlalchemy import Connection, delete, func, insert, select, update

from roomlog.store import statements
from roomlog.store.db import PARTITIONS_LOCK, lock_schema
from roomlog.store.schema import appliers, partitions


def part_of(project_id: int, room: str, count: int) -> int:
    """The partition of `room` of project `project_id` among `count`."""
    return zlib.crc32(f"{project_id}\x1f{room}".encode()) % count


def partition_count(connection: Connection, wanted: int) -> int:
    """The database's partition count: the one its first server set (`wanted` if none did).

    On a new PostgreSQL database, several transactions may find no partitions at once (a
    server's writer threads and its applier, or servers starting together): the first to
    take the lock makes them, and the others, waiting for it, then find them."""
    found = _partitions(connection)
    if found:
        return found
    if connection.dialect.name == "postgresql":
        lock_schema(connection, PARTITIONS_LOCK)
        found = _partitions(connection)  # a new snapshot: what the lock's holder committed
        if found:
            return found
    connection.execute(
        insert(partitions), [{"part": p, "holder": None, "lease_until": 0} for p in range(wanted)]
    )
    return wanted


def _partitions(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(partitions)).scalar_one())


def claim(connection: Connection, holder: str, now: int, lease: int) -> list[int]:
    """Renew `holder`'s leases and take free or expired partitions up to a fair share; the
    partitions it holds now (times: wall-clock µs)."""
    count = int(connection.execute(select(func.count()).select_from(partitions)).scalar_one())
    mine = [
        row[0]
        for row in connection.execute(
            select(partitions.c.part)
            .where(partitions.c.holder == holder, partitions.c.lease_until > now)
            .with_for_update()
        )
    ]
    insert_or_renew(connection, holder, now + lease)
    connection.execute(delete(appliers).where(appliers.c.seen_until < now - 3600 * 1_000_000))
    others = connection.execute(
        select(func.count()).where(appliers.c.holder != holder, appliers.c.seen_until > now)
    ).scalar_one()
    share = math.ceil(count / (int(others) + 1))
    if len(mine) > share:  # a newcomer: give it the excess
        mine, excess = sorted(mine)[:share], sorted(mine)[share:]
        connection.execute(
            update(partitions)
            .where(partitions.c.part.in_(excess))
            .values(holder=None, lease_until=0)
        )
    if len(mine) < share:
        free = connection.execute(
            select(partitions.c.part)
            .where((partitions.c.holder.is_(None)) | (partitions.c.lease_until <= now))
            .order_by(partitions.c.part)
            .limit(share - len(mine))
            .with_for_update(skip_locked=True)
        )
        mine += [row[0] for row in free]
    if mine:
        connection.execute(
            update(partitions)
            .where(partitions.c.part.in_(mine))
            .values(holder=holder, lease_until=now + lease)
        )
    return sorted(mine)


def insert_or_renew(connection: Connection, holder: str, until: int) -> bool:
    """Say that `holder` is alive until `until`; whether it was known before."""
    renewed = connection.execute(
        update(appliers).where(appliers.c.holder == holder).values(seen_until=until)
    ).rowcount
    if not renewed:
        connection.execute(insert(appliers).values(holder=holder, seen_until=until))
    return bool(renewed)


def holds(connection: Connection, holder: str, part: int, now: int) -> bool:
    """Whether `holder` still holds `part` (its row locked until the transaction ends)."""
    found = statements.rows(connection, statements.of(connection).holds, (part,))
    return bool(found) and found[0][0] == holder and found[0][1] > now


def release(connection: Connection, holder: str) -> None:
    """Give up `holder`'s leases at once, for another process to take them now."""
    connection.execute(
        update(partitions).where(partitions.c.holder == holder).values(holder=None, lease_until=0)
    )
    connection.execute(delete(appliers).where(appliers.c.holder == holder))


def waiting(connection: Connection) -> dict[int, int]:
    """The partitions with events not yet applied, each with when its oldest was received."""
    found = statements.rows(connection, statements.of(connection).waiting, ())
    return {int(part): int(oldest) for part, oldest in found}


def forget(connection: Connection, taken: list[int]) -> None:
    """Delete the `pending` rows `taken`, once applied. By their ids, not up to the last: an
    append numbered before that one may commit after it was read (PostgreSQL numbers rows
    when they are written), and its row must stay for the applier's next turn."""
    sql = statements.of(connection)
    statements.run(connection, sql.forget_keyed, (sql.keys(taken),))
