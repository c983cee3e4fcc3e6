"""Retention: removing what is older than the service keeps, in small transactions.

Always, delivered (and given-up) webhook events and the delivery log older than 30 days.
With a retention of N days, also each room's events, sessions, chat and checkpoints from
before its *floor*: its newest checkpoint at or before the cutoff (now - N days). A
checkpoint is an instant where nothing before can change anything after (domain/engine.py),
so the room's sessions after the floor do not depend on what is removed, and a rebuild of the
room starts from the floor (`rebuilding.rebuilt`). A room that has not settled since before the
cutoff (someone has been in it all along) keeps everything until it does. Sessions that
ended before the floor are removed; those that ended between the floor and the cutoff stay
until the next floor passes them.

Each transaction removes about `CHUNK` rows, so a writer waits milliseconds, not for the
whole pruning; on SQLite they take turns with the writer like any other transaction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, Table, and_, delete, func, select

from roomlog.domain.events import MICROS
from roomlog.store.schema import chat_messages, checkpoints, deliveries, events, outbox, sessions
from roomlog.store.store import Store

DELIVERY_DAYS: Final = 30
CHUNK: Final = 250
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
    retention: int,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> Pruned:
    """Remove (or with `dry_run`, count) what is older than kept at `now` (µs): events,
    sessions and chat older than `retention` (µs, as `Settings.retention`; 0: keep them all)
    and delivered webhooks older than 30 days.
    Setting `stop` ends it after the current transaction."""
    pruned = Pruned()
    run = _Run(store, pruned, dry_run, stop or threading.Event())
    delivered_before = now - DELIVERY_DAYS * DAY
    done = outbox.c.status.in_(("delivered", "failed"))
    run.chunked(
        outbox, outbox.c.next_attempt_at, and_(done, outbox.c.next_attempt_at < delivered_before)
    )
    run.chunked(deliveries, deliveries.c.at, deliveries.c.at < delivered_before)
    if retention:
        cutoff = now - retention
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
    with store.database.reader.connect() as connection:
        return [(int(p), str(r), int(a)) for p, r, a in connection.execute(query)]


class _Run:
    def __init__(self, store: Store, pruned: Pruned, dry_run: bool, stop: threading.Event) -> None:
        self.store = store
        self.pruned = pruned
        self.dry_run = dry_run
        self.stop = stop

    def room(self, project_id: int, room: str, floor: int) -> None:
        def of(table: Table, *more: ColumnElement[bool]) -> ColumnElement[bool]:
            return and_(table.c.project_id == project_id, table.c.room == room, *more)

        run = self.chunked
        run(events, events.c.at, of(events, events.c.at < floor))
        # A session that ended before the floor began before it: `start_at` keeps to the index.
        ended = (sessions.c.start_at < floor, sessions.c.end_at < floor)
        run(sessions, sessions.c.start_at, of(sessions, *ended))
        run(chat_messages, chat_messages.c.at, of(chat_messages, chat_messages.c.at < floor))
        run(checkpoints, checkpoints.c.at, of(checkpoints, checkpoints.c.at < floor))

    def chunked(self, table: Table, order: ColumnElement[Any], where: Any) -> None:
        """Delete `table`'s rows matching `where`, about `CHUNK` per transaction, in the
        order of `order` (the last column of the index `where` follows, so that every
        statement is a range of one index)."""
        if self.dry_run:
            with self.store.database.reader.connect() as connection:
                count = connection.execute(select(func.count()).where(where)).scalar_one()
            self.pruned.add(table.name, int(count))
            return
        while not self.stop.is_set():
            with self.store.transactions.begin() as connection:
                last = connection.execute(
                    select(order).where(where).order_by(order).offset(CHUNK - 1).limit(1)
                ).scalar()
                bounded = where if last is None else and_(where, order <= last)
                removed = int(connection.execute(delete(table).where(bounded)).rowcount)
            self.pruned.add(table.name, removed)
            if last is None:
                return
