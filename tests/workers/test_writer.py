"""The writer: requests' events appended in group commits; on PostgreSQL by several threads
side by side, so that a group the database holds up holds up no other."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store.db import migrate, open_database
from roomlog.store.projects import Project, ensure_project
from roomlog.store.schema import events, pending
from roomlog.store.store import Store
from roomlog.store.writes import IngestResult, Settings, Submission
from roomlog.workers.writer import Writer
from tests.fixtures import T0, blocked_by, scratch_database

NOW = (T0 + 60) * MICROS


def _writer(url: str, threads: int, **given: Any) -> tuple[Writer, Project]:
    database = open_database(url)
    migrate(database)
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    writer = Writer(Store(database, Settings()), clock=lambda: NOW, threads=threads, **given)
    writer.start()
    return writer, project


def _joins(project: Project, ids: list[str]) -> Submission:
    at = (T0 + 10) * MICROS
    return Submission(
        project,
        [(n, PresenceEvent(i, JOINED, f"room-{i}", f"p-{i}", at)) for n, i in enumerate(ids)],
    )


def test_on_postgresql_a_group_the_database_holds_up_holds_up_no_other(
    postgres_schema: str,
) -> None:
    """Another transaction holds the id of one request's event, uncommitted: that request's
    append waits for it in the database. Another request's events are appended and
    answered meanwhile, by the writer's other thread; once the holder gives up, the first
    is appended too."""
    writer, project = _writer(postgres_schema, threads=2)
    holder = psycopg.connect(postgres_schema)
    try:
        holder.execute(
            "INSERT INTO events (project_id, id, room, joined, participant_id, at, received_at)"
            " VALUES (%s, 'held', 'room-held', 1, 'p-held', %s, %s)",
            (project.id, (T0 + 10) * MICROS, NOW),
        )

        async def run() -> tuple[IngestResult, IngestResult]:
            stuck = asyncio.ensure_future(writer.submit(_joins(project, ["held"])))
            while not blocked_by(holder):
                assert not stuck.done(), stuck.result()
                await asyncio.sleep(0.01)
            free = await asyncio.wait_for(writer.submit(_joins(project, ["free"])), 30)
            assert not stuck.done()  # still waiting for the holder
            holder.rollback()
            return free, await asyncio.wait_for(stuck, 30)

        free, held = asyncio.run(run())
        assert (free.accepted, free.duplicates, free.rejected) == (1, 0, [])
        assert (held.accepted, held.duplicates, held.rejected) == (1, 0, [])
    finally:
        holder.close()
        writer.stop()
        writer.store.database.dispose()


def test_a_small_group_is_applied_at_once_only_while_no_other_thread_writes(
    postgres_schema: str,
) -> None:
    """With the appliers idle, a few on-time events are applied in their append's own
    transaction; but while another thread is writing (the writer is busy), they are left to
    the appliers, like any group under load."""
    went: list[str] = []
    writer, project = _writer(
        postgres_schema,
        threads=2,
        idle=lambda: True,
        wake=lambda: went.append("behind"),
        applied=lambda: went.append("at once"),
    )
    holder = psycopg.connect(postgres_schema)
    try:

        async def run() -> None:
            await asyncio.wait_for(writer.submit(_joins(project, ["alone"])), 30)
            assert went == ["at once"]
            holder.execute(
                "INSERT INTO events (project_id, id, room, joined, participant_id, at,"
                " received_at) VALUES (%s, 'held', 'room-held', 1, 'p-held', %s, %s)",
                (project.id, (T0 + 10) * MICROS, NOW),
            )
            stuck = asyncio.ensure_future(writer.submit(_joins(project, ["held"])))
            while not blocked_by(holder):  # one thread writes, held up by the database
                await asyncio.sleep(0.01)
            await asyncio.wait_for(writer.submit(_joins(project, ["busy"])), 30)
            assert went == ["at once", "behind"]
            holder.rollback()
            await asyncio.wait_for(stuck, 30)
            assert went == ["at once", "behind", "at once"]

        asyncio.run(run())
        with writer.store.database.engine.connect() as connection:
            waiting = connection.execute(select(func.count()).select_from(pending)).scalar()
        assert waiting == 1  # the busy one's event, for its partition's applier
    finally:
        holder.close()
        writer.stop()
        writer.store.database.dispose()


def test_groups_appended_side_by_side_store_each_id_once(postgres_schema: str) -> None:
    """Many requests at once, their ids overlapping: every id is stored once, and over all
    the answers each was accepted once and a duplicate every other time."""
    writer, project = _writer(postgres_schema, threads=2)
    ids = [f"e{n}" for n in range(400)]
    requests = [ids[start : start + 50] for start in range(0, 400, 10)]  # each id in 5 at most

    async def run() -> list[IngestResult]:
        return list(await asyncio.gather(*(writer.submit(_joins(project, r)) for r in requests)))

    try:
        results = asyncio.run(run())
        with writer.store.database.engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(events)).scalar_one()
    finally:
        writer.stop()
        writer.store.database.dispose()
    assert stored == len(ids)
    assert sum(r.accepted for r in results) == len(ids)
    assert sum(r.duplicates for r in results) == sum(map(len, requests)) - len(ids)
    assert not any(r.rejected for r in results)


@pytest.mark.parametrize(("kind", "threads"), [("sqlite", 1), ("postgresql", 2)])
def test_sqlite_has_one_writer_thread_postgresql_as_many_as_asked(
    kind: str, threads: int, tmp_path: Path
) -> None:
    with scratch_database(kind, tmp_path) as url:
        writer, _ = _writer(url, threads=2)
        try:
            running = [t for t in threading.enumerate() if t.name.startswith("roomlog-writer")]
            assert len(running) == threads
        finally:
            writer.stop()
            writer.store.database.dispose()
        assert not [t for t in threading.enumerate() if t.name.startswith("roomlog-writer")]
