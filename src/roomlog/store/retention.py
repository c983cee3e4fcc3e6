"""Retention: removing what is older than the service keeps, in small transactions.

Always, delivered (and given-up) webhook events and the delivery log older than 30 days.
With a retention of N days, also each room's events, sessions, chat and checkpoints from
before its *floor*: its newest checkpoint at or before the cutoff (now - N days). A
checkpoint is an instant where nothing before can change anything after (domain/engine.py),
so the room's sessions after the floor do not depend on what is removed, and a rebuild of the
room starts from the floor (`Store._rebuilt`). A room that has not settled since before the
cutoff (someone has been in it all along) keeps everything until it does. Sessions that
ended before the floor are removed; those that ended between the floor and the cutoff stay
until the next floor passes them.

Each transaction removes at most `CHUNK` rows, so a writer waits milliseconds, not for the
whole pruning; on SQLite they take turns with the writer like any other transaction.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Table, and_, delete, func, select, tuple_

from roomlog.domain.events import MICROS
from roomlog.store.schema import chat_messages, checkpoints, deliveries, events, outbox, sessions
from roomlog.store.store import Store

log = logging.getLogger("roomlog.retention")

DELIVERY_DAYS: Final = 30
CHUNK: Final = 1_000
DAY: Final = 86_400 * MICROS
TABLES: Final = ("events", "sessions", "chat_messages", "checkpoints", "outbox", "deliveries")


@dataclass
class Pruned:
    """Rows removed (or, for a dry run, that would be), by table."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    rooms: int = 0  # rooms whose history was cut at a floor

    def add(self, table: str, count: int) -> None:
        self.rows[table] += count

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def prune(
    store: Store,
    now: int,
    days: float | None,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> Pruned:
    """Remove (or with `dry_run`, count) what is older than kept at `now` (µs): `days` of
    events, sessions and chat (None: keep them all) and 30 days of delivered webhooks.
    Setting `stop` ends it after the current transaction."""
    pruned = Pruned()
    run = _Run(store, pruned, dry_run, stop or threading.Event())
    delivered_before = now - DELIVERY_DAYS * DAY
    done = outbox.c.status.in_(("delivered", "failed"))
    run.chunked(
        outbox,
        (outbox.c.webhook_id, outbox.c.event_id),
        and_(done, outbox.c.next_attempt_at < delivered_before),
    )
    run.chunked(deliveries, (deliveries.c.id,), deliveries.c.at < delivered_before)
    if days is not None:
        cutoff = now - int(days * DAY)
        for project_id, room, at in _floors(store, cutoff):
            if run.stop.is_set():
                break
            pruned.rooms += 1
            run.room(project_id, room, at)
    return pruned


def _floors(store: Store, cutoff: int) -> list[tuple[int, str, int]]:
    """(project, room, floor) of each room with events before its floor at or before
    `cutoff`."""
    floor = (
        select(
            checkpoints.c.project_id,
            checkpoints.c.room,
            func.max(checkpoints.c.at).label("at"),
        )
        .where(checkpoints.c.at <= cutoff)
        .group_by(checkpoints.c.project_id, checkpoints.c.room)
        .subquery()
    )
    older = (
        select(events.c.project_id)
        .where(
            events.c.project_id == floor.c.project_id,
            events.c.room == floor.c.room,
            events.c.at < floor.c.at,
        )
        .exists()
    )
    query = select(floor.c.project_id, floor.c.room, floor.c.at).where(older)
    with store.database.engine.connect() as connection:
        return [(int(p), str(r), int(a)) for p, r, a in connection.execute(query)]


class _Run:
    def __init__(self, store: Store, pruned: Pruned, dry_run: bool, stop: threading.Event) -> None:
        self.store = store
        self.pruned = pruned
        self.dry_run = dry_run
        self.stop = stop

    def room(self, project_id: int, room: str, floor: int) -> None:
        def of(table: Table, at: ColumnElement[bool]) -> ColumnElement[bool]:
            return and_(table.c.project_id == project_id, table.c.room == room, at)

        run = self.chunked
        run(events, (events.c.project_id, events.c.id), of(events, events.c.at < floor))
        ended = and_(sessions.c.end_at.is_not(None), sessions.c.end_at < floor)
        run(sessions, (sessions.c.project_id, sessions.c.id), of(sessions, ended))
        chats = (chat_messages.c.project_id, chat_messages.c.id)
        run(chat_messages, chats, of(chat_messages, chat_messages.c.at < floor))
        marks = (checkpoints.c.project_id, checkpoints.c.room, checkpoints.c.at)
        run(checkpoints, marks, of(checkpoints, checkpoints.c.at < floor))

    def chunked(self, table: Table, key: tuple[ColumnElement[object], ...], where: Any) -> None:
        """Delete `table`'s rows matching `where`, `CHUNK` per transaction, by `key`."""
        if self.dry_run:
            with self.store.database.engine.connect() as connection:
                count = connection.execute(select(func.count()).where(where)).scalar_one()
            self.pruned.add(table.name, int(count))
            return
        while True:
            with self.store.transactions.begin() as connection:
                removed = _delete_some(connection, table, key, where)
            self.pruned.add(table.name, removed)
            if removed < CHUNK or self.stop.is_set():
                return


def _delete_some(
    connection: Connection, table: Table, key: tuple[ColumnElement[object], ...], where: Any
) -> int:
    keys = connection.execute(select(*key).where(where).limit(CHUNK)).all()
    if not keys:
        return 0
    if len(key) == 1:
        condition = key[0].in_([k[0] for k in keys])
    else:
        condition = tuple_(*key).in_([tuple(k) for k in keys])
    return int(connection.execute(delete(table).where(condition)).rowcount)
