"""Helpers for the applier's tests: rooms in different partitions, and what is pending."""

from __future__ import annotations

from sqlalchemy import func, select

from roomlog.store.db import Database
from roomlog.store.leases import part_of
from roomlog.store.schema import pending


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
