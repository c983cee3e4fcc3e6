"""An applier's threads (`serve --apply-threads`): its partitions are dealt out among them,
each partition to one thread, and what they apply side by side is what `sessionize` makes
of the events; a thread's failure reaches the applier once the other threads are done, and
loses nothing."""

from __future__ import annotations

import threading

import pytest

from roomlog.domain.batch import sessionize
from roomlog.domain.events import MICROS
from roomlog.store.behind import apply_pending
from roomlog.store.db import Database
from roomlog.store.leases import part_of
from roomlog.store.projects import ensure_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from roomlog.workers import applier as applier_module
from roomlog.workers.applier import Applier
from tests.fixtures import T0
from tests.workers.partitions import pending_rows, rooms_apart, stored_sessions, visits

NOW = (T0 + 3600) * MICROS
ROOMS = 40


def test_the_threads_share_the_partitions_out_and_apply_what_sessionize_makes(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    store = Store(database, Settings(apply_threads=3))
    events = visits([f"room-{n}" for n in range(ROOMS)])
    store.ingest([Submission(project, list(enumerate(events)))], NOW, behind=True)
    applier = Applier(store, clock=lambda: NOW)
    shares: list[tuple[str, list[int]]] = []
    apply_parts = applier._apply_parts

    def recorded(parts: list[int]) -> tuple[int, bool]:
        shares.append((threading.current_thread().name, parts))
        return apply_parts(parts)

    monkeypatch.setattr(applier, "_apply_parts", recorded)
    with store.holding():
        applier._claim()
        while applier._turn():
            pass

    count = store.parts or 16
    busy = {part_of(project.id, f"room-{n}", count) for n in range(ROOMS)}
    first = [parts for _, parts in shares[:3]]
    assert len(first) == 3
    assert sorted(p for parts in first for p in parts) == sorted(busy)  # each once
    assert len({name for name, _ in shares[:3]}) > 1  # side by side, not one after another
    assert pending_rows(database) == 0
    expected = sessionize(events, NOW, Settings().rules)
    assert stored_sessions(database) == sorted((s.room, s.start, s.end) for s in expected)
    assert len(expected) == ROOMS


def test_a_failure_in_one_thread_ends_the_round_after_the_others_and_loses_nothing(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round ends only once every thread is done, a failed one's too: the next round
    must not deal a partition to a thread while another still applies it."""
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    store = Store(database, Settings(apply_threads=2))
    rooms = rooms_apart(project.id, 16)
    # The lower partition fails: its thread's share is the first one dealt out.
    failing = min(part_of(project.id, room, 16) for room in rooms)
    events = visits(rooms)
    store.ingest([Submission(project, list(enumerate(events)))], NOW, behind=True)
    applier = Applier(store, clock=lambda: NOW)
    failed, finished = threading.Event(), threading.Event()

    def broken(store: Store, part: int, *rest: object) -> int:
        if part == failing:
            failed.set()
            raise RuntimeError("the database went away")
        failed.wait(5)  # still applying when the other thread fails
        taken = apply_pending(store, part, *rest)  # type: ignore[arg-type]
        if not taken:
            finished.set()
        return taken

    monkeypatch.setattr(applier_module, "apply_pending", broken)
    with store.holding():
        applier._claim()
        with pytest.raises(RuntimeError, match="went away"):
            applier._turn()
        assert finished.is_set()  # the other thread's share was done before the round ended
        assert pending_rows(database) > 0  # the failing partition's events wait
        monkeypatch.setattr(applier_module, "apply_pending", apply_pending)
        while applier._turn():
            pass
    assert pending_rows(database) == 0
    expected = sessionize(events, NOW, Settings().rules)
    assert stored_sessions(database) == sorted((s.room, s.start, s.end) for s in expected)
    assert len(expected) == 2
