"""A room's held events are kept in its state while they are few, and past that in chunks
beside it, on both databases: each write stores what it added, a settle or a rebuild
replaces them, and a room read back from its row holds them all."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from roomlog.domain.batch import sessionize
from roomlog.domain.engine import Room, Stamped, stamp
from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.store import rooms as room_state
from roomlog.store.db import Database
from roomlog.store.projects import Project, ensure_project
from roomlog.store.rooms import load_room
from roomlog.store.schema import room_held, rooms
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from tests.fixtures import T0
from tests.workers.partitions import stored_sessions

_decode = msgspec.msgpack.Decoder().decode
WINDOW = 60 * MICROS


def _visit(n: int) -> list[PresenceEvent]:
    """Person `n` in room `r` for 40 s, starting 50 s after the last one began."""
    at = (T0 + 50 * n) * MICROS
    return [
        PresenceEvent(f"j{n}", JOINED, "r", f"p{n % 3}", at),
        PresenceEvent(f"l{n}", LEFT, "r", f"p{n % 3}", at + 40 * MICROS),
    ]


def _post(store: Store, project: Project, found: list[PresenceEvent]) -> None:
    now = max(e.at for e in found) + MICROS
    store.ingest([Submission(project, list(enumerate(found)))], now)


def _stored(database: Database, project: Project) -> tuple[dict[str, Any], list[list[Any]]]:
    """The room's state as its row holds it, and its chunks of held events in order."""
    with database.engine.connect() as connection:
        blob = connection.execute(
            select(rooms.c.state).where(rooms.c.project_id == project.id, rooms.c.name == "r")
        ).scalar_one()
        chunks = connection.execute(
            select(room_held.c.events)
            .where(room_held.c.project_id == project.id, room_held.c.room == "r")
            .order_by(room_held.c.seq)
        ).scalars()
        return _decode(blob), [_decode(c) for c in chunks]


def _read_back(database: Database, project: Project) -> Room:
    """The room as another process reads it: from its row and its chunks."""
    state, chunks = _stored(database, project)
    blobs = [msgspec.msgpack.encode(c) for c in chunks]
    return load_room("r", msgspec.msgpack.encode(state), Settings().rules, "t", blobs).room


def _stored_sessions(database: Database) -> list[tuple[int, int | None]]:
    """The stored sessions' starts and ends, in order (the tests' one room)."""
    return [(start, end) for _, start, end in stored_sessions(database)]


def _project(database: Database) -> Project:
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "held")
    return project


def test_a_room_keeps_few_events_inline_and_more_in_chunks(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to `INLINE_AT_MOST` events held, the state holds them; past it, the write that
    crosses it stores them all as one chunk, and each write after it only what it added."""
    monkeypatch.setattr(room_state, "INLINE_AT_MOST", 4)
    store = Store(database, Settings(late_window=10 * WINDOW))
    project = _project(database)
    for n in range(2):
        _post(store, project, _visit(n))
    state, chunks = _stored(database, project)
    two = [stamp(e) for n in range(2) for e in _visit(n)]
    assert [tuple(e) for e in state["room"]["events"]] == two and not chunks
    assert "chunked" not in state
    for n in range(2, 4):
        _post(store, project, _visit(n))
    state, chunks = _stored(database, project)
    assert state["room"]["events"] == [] and state["chunked"] == 1
    three = [list(stamp(e)) for n in range(3) for e in _visit(n)]
    assert chunks == [three, [list(stamp(e)) for e in _visit(3)]]
    expected: list[Stamped] = sorted(stamp(e) for n in range(4) for e in _visit(n))
    assert _read_back(database, project).held() == expected


def test_a_settle_replaces_the_chunks_with_what_the_room_still_holds(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_state, "INLINE_AT_MOST", 4)
    monkeypatch.setattr(room_state, "SETTLE_AT_LEAST", 8)
    store = Store(database, Settings(late_window=WINDOW))
    project = _project(database)
    for n in range(8):  # 400 s of visits: the room settles past the late window
        _post(store, project, _visit(n))
    room = _read_back(database, project)
    assert room.checkpoint.at is not None  # it settled
    held = store._rooms[(project.id, "r")][1].room.held()
    assert room.held() == held
    assert len(held) < 16  # the settled part is gone from the chunks too
    # Held inline again if few are left, else in one chunk: never both.
    state, chunks = _stored(database, project)
    if len(held) <= 4:
        assert [tuple(e) for e in state["room"]["events"]] == held and not chunks
    else:
        assert state["room"]["events"] == [] and chunks == [[list(e) for e in held]]
    # Another store reads the room back from its row and chunks, then this one from the
    # other's writes: the sessions are those of every event.
    other = Store(database, Settings(late_window=WINDOW))
    _post(other, project, _visit(8))
    _post(store, project, _visit(9))
    everything = [e for n in range(10) for e in _visit(n)]
    now = max(e.at for e in everything) + MICROS
    expected = sessionize(everything, now, Settings().rules)
    assert _stored_sessions(database) == sorted((s.start, s.end) for s in expected)
    assert len(expected) > 1


def test_a_room_past_the_window_settles_once_it_holds_enough_events(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the late window, a room settles only once it holds `SETTLE_AT_LEAST` events
    since its checkpoint: a history posted faster than it happened does not settle at every
    write. Its sessions are those of every event all along."""
    monkeypatch.setattr(room_state, "SETTLE_AT_LEAST", 12)
    store = Store(database, Settings(late_window=WINDOW))
    project = _project(database)
    checkpoints = []
    for n in range(12):  # one visit a write, each 50 s after the last: all past the window
        _post(store, project, _visit(n))
        checkpoints.append(_read_back(database, project).checkpoint.at)
        everything = [e for k in range(n + 1) for e in _visit(k)]
        now = max(e.at for e in everything) + MICROS
        expected = sessionize(everything, now, Settings().rules)
        assert _stored_sessions(database) == sorted((s.start, s.end) for s in expected)
    # 2 events a write: it first holds 12 after the sixth, and settles then, not before.
    assert checkpoints[:5] == [None] * 5
    assert checkpoints[5] is not None
    # Settled, it holds fewer than 12 again, and waits for 12 more before the next settle.
    assert checkpoints[6:10] == [checkpoints[5]] * 4


def test_a_state_that_held_its_events_inline_moves_them_to_a_chunk(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room row written before chunks (on PostgreSQL, until this release) holds its events
    in `state`. The next write that holds more than `INLINE_AT_MOST` stores them all as one
    chunk, and leaves none inline."""
    monkeypatch.setattr(room_state, "INLINE_AT_MOST", 2)
    store = Store(database, Settings(late_window=10 * WINDOW))
    project = _project(database)
    _post(store, project, _visit(0))
    old = Room("r", events=[stamp(e) for e in _visit(0)])
    inline = msgspec.msgpack.encode({"room": old.to_dict(), "live": {}, "settled": 0})
    with database.engine.begin() as connection:
        connection.execute(
            rooms.update()
            .where(rooms.c.project_id == project.id, rooms.c.name == "r")
            .values(state=inline, version=rooms.c.version + 1)
        )
        connection.execute(room_held.delete())
    _post(store, project, _visit(1))
    state, chunks = _stored(database, project)
    assert state["room"]["events"] == []
    assert chunks == [[list(stamp(e)) for e in _visit(0) + _visit(1)]]


def test_a_new_room_with_few_events_neither_writes_nor_drops_chunks() -> None:
    """A room's first write, of a few events: inline, with no chunk row to add or delete."""
    state = load_room("r", b"", Settings().rules, "t")
    found = [stamp(e) for e in _visit(0)]
    written = room_state.advance(1, state, found, found[-1][0] // 2 + MICROS, WINDOW)
    assert written.held == [] and not written.held_replaced
    assert not written.after.chunked and written.after.room.held() == found
