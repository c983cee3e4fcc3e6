"""Each room's checkpoints: where it settled, kept so that a late event re-derives the room
from the newest one at or before it instead of from its whole event log; and the events a
room holds since its checkpoint, kept in chunks beside its state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, func, or_, select

from roomlog.domain.engine import Checkpoint
from roomlog.store import statements
from roomlog.store.rooms import RoomWrite, encode_held, load_checkpoint
from roomlog.store.schema import checkpoints, events, sessions

if TYPE_CHECKING:
    from roomlog.store.store import Store


def newest_before(
    connection: Connection, project_id: int, name: str, at: int
) -> tuple[Checkpoint, int] | None:
    """Room `name`'s newest checkpoint at or before `at`, with the sessions settled before it."""
    found = connection.execute(
        select(checkpoints.c.state, checkpoints.c.settled)
        .where(
            checkpoints.c.project_id == project_id,
            checkpoints.c.room == name,
            checkpoints.c.at <= at,
        )
        .order_by(checkpoints.c.at.desc())
        .limit(1)
    ).first()
    return None if found is None else (load_checkpoint(found[0]), found[1])


def floor(connection: Connection, project_id: int, name: str) -> tuple[Checkpoint, int] | None:
    """Room `name`'s oldest checkpoint if no event of the room is older: retention removed
    what came before it, and the room is derived from there. None for a room with its whole
    history."""
    oldest = connection.execute(
        select(checkpoints.c.at, checkpoints.c.state, checkpoints.c.settled)
        .where(checkpoints.c.project_id == project_id, checkpoints.c.room == name)
        .order_by(checkpoints.c.at)
        .limit(1)
    ).first()
    if oldest is None:
        return None
    first = connection.execute(
        select(func.min(events.c.at)).where(
            events.c.project_id == project_id, events.c.room == name
        )
    ).scalar_one()
    if first is not None and first < oldest[0]:
        return None
    return load_checkpoint(oldest[1]), oldest[2]


def replace(connection: Connection, project_id: int, name: str, since: int | None) -> None:
    """Drop what a rebuild of room `name` (from `since`, or all of it) writes afresh: its
    sessions that ended at or after `since` or are ongoing, and its checkpoints after it."""
    own = (sessions.c.project_id == project_id, sessions.c.room == name)
    marks = (checkpoints.c.project_id == project_id, checkpoints.c.room == name)
    if since is None:
        connection.execute(delete(sessions).where(*own))
        connection.execute(delete(checkpoints).where(*marks))
        return
    changed = or_(sessions.c.end_at.is_(None), sessions.c.end_at >= since)
    connection.execute(delete(sessions).where(*own, changed))
    connection.execute(delete(checkpoints).where(*marks, checkpoints.c.at > since))


def keep(connection: Connection, project_id: int, writes: Mapping[str, RoomWrite]) -> None:
    """Store the checkpoints the room updates `writes` settled at."""
    rows = [
        (project_id, name, at, blob, count)
        for name, w in writes.items()
        for at, blob, count in w.checkpoints
    ]
    if rows:
        statements.run_many(connection, statements.of(connection).keep, rows)


def keep_held(
    connection: Connection,
    project_id: int,
    writes: Mapping[str, RoomWrite],
    versions: Mapping[str, int],
) -> None:
    """Store the held events of the room updates `writes` (`schema.room_held`): each one's new
    events as a chunk numbered by the room's new version, or all of them in place of the
    room's chunks (`RoomWrite.held_replaced`)."""
    sql = statements.of(connection)
    replaced = [(project_id, name) for name, w in writes.items() if w.held_replaced]
    if replaced:
        statements.run_many(connection, sql.drop_held, replaced)
    chunks = [
        (project_id, name, versions[name] + 1, encode_held(w.held))
        for name, w in writes.items()
        if w.held
    ]
    if chunks:
        statements.run_many(connection, sql.add_held, chunks)


def rebuild_project(store: Store, project_id: int, now: int) -> int:
    """Recompute every room of a project from its event log, 50 rooms per transaction; how
    many rooms."""
    with store.database.reader.connect() as connection:
        names = sorted(
            r[0]
            for r in connection.execute(
                select(events.c.room).where(events.c.project_id == project_id).distinct()
            )
        )
    for i in range(0, len(names), 50):
        store.rebuild_rooms(project_id, names[i : i + 50], now)
    return len(names)
