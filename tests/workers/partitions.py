"""Helpers for the applier's tests: rooms in different partitions, visits to apply, what is
pending, and the sessions stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.store.db import Database
from roomlog.store.leases import part_of
from roomlog.store.schema import pending, sessions
from tests.fixtures import T0


def rooms_apart(project_id: int, count: int) -> tuple[str, str]:
    """Two rooms of the project in different partitions (of `count`)."""
    first = part_of(project_id, "room-a", count)
    other = next(
        f"room-{n}" for n in range(1000) if part_of(project_id, f"room-{n}", count) != first
    )
    return "room-a", other


def pending_rows(database: Database, part: int | None = None) -> int:
    """How many `pending` rows wait to be applied (in partition `part`, if given)."""
    query = select(func.count()).select_from(pending)
    if part is not None:
        query = query.where(pending.c.part == part)
    with database.reader.connect() as connection:
        return int(connection.execute(query).scalar_one())


def visits(rooms: Sequence[str]) -> list[PresenceEvent]:
    """Two people in each of `rooms` for ten minutes, one of them twice."""
    found = []
    for n, room in enumerate(rooms):
        at = T0 + n
        for who, (come, go) in {"ana": (0, 600), "bo": (30, 300), "bo2": (400, 700)}.items():
            person = who[:2]
            found.append(
                PresenceEvent(f"{room}-{who}-j", JOINED, room, person, (at + come) * MICROS)
            )
            found.append(PresenceEvent(f"{room}-{who}-l", LEFT, room, person, (at + go) * MICROS))
    return found


def stored_sessions(database: Database) -> list[tuple[str, int, int | None]]:
    """Every stored session's room, start and end, in that order."""
    with database.reader.connect() as connection:
        rows = connection.execute(
            select(sessions.c.room, sessions.c.start_at, sessions.c.end_at)
        ).all()
    return sorted((room, start, end) for room, start, end in rows)
