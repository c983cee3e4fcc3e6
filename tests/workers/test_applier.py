"""The applier's rounds: after a short round, the next one waits until `gather` seconds have
passed since it began, and applies what came meanwhile with it; after a long round, or
none, or one that cut a partition's turn short, the next begins at once; a partition's turn
ends once its time is up, and every partition with events waiting gets one in each round.
Its clock and its pause are replaced, so that the test decides how long a round took and what
arrives while it waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store.behind import APPLY_ROWS, apply_parts, apply_pending
from roomlog.store.db import Database
from roomlog.store.leases import part_of
from roomlog.store.projects import Project, ensure_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from roomlog.workers import applier as applier_module
from roomlog.workers.applier import TURN, Applier
from tests.fixtures import T0
from tests.workers.partitions import pending_rows, rooms_apart

NOW = (T0 + 60) * MICROS
GATHER = 10.0


class Clock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Pauses:
    """The applier's pause: records how long it was asked to wait, runs `meanwhile` (what
    arrives while the applier waits), moves the clock on, and never stops the applier."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.asked: list[float] = []
        self.meanwhile: Callable[[], None] = lambda: None

    def __call__(self, seconds: float) -> bool:
        self.asked.append(seconds)
        self.meanwhile()
        self.clock.now += seconds
        return False


Setup = tuple[Store, Project, Applier, Pauses]


@pytest.fixture
def setup(database: Database) -> Iterator[Setup]:
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, "default")
    # One thread: the clock these tests move is the applier's, shared by its threads.
    store = Store(database, Settings(apply_threads=1))
    applier = Applier(store, clock=lambda: NOW, gather=GATHER)
    clock = Clock()
    pauses = Pauses(clock)
    applier._monotonic = clock
    applier._pause = pauses
    with store.holding():
        applier._claim()
        yield store, project, applier, pauses


def _append(store: Store, project: Project, room: str, n: int) -> None:
    event = PresenceEvent(f"{room}-{n}", JOINED, room, f"p-{n}", (T0 + n) * MICROS)
    store.ingest([Submission(project, [(0, event)])], NOW, behind=True)


def test_after_a_short_round_the_next_waits_and_takes_what_came_meanwhile(
    setup: Setup,
) -> None:
    store, project, applier, paused = setup
    first, other = rooms_apart(project.id, store.parts or 16)
    paused.meanwhile = lambda: _append(store, project, other, 2)
    _append(store, project, first, 0)
    assert applier._turn() == 1
    assert paused.asked == []  # the first round waits for nothing

    paused.clock.now += 1.0
    _append(store, project, first, 1)
    busy = applier._gathered(applier._look())
    assert paused.asked == [GATHER - 1.0]
    count = store.parts or 16
    assert busy == {part_of(project.id, first, count), part_of(project.id, other, count)}
    assert applier._round(busy) == 2
    assert pending_rows(store.database) == 0


def test_after_a_long_round_the_next_begins_at_once(setup: Setup) -> None:
    store, project, applier, paused = setup
    apply = applier._apply

    def slow(busy: set[int]) -> tuple[int, bool]:
        paused.clock.now += GATHER / 2  # a round as long as half of `gather` is a long one
        return apply(busy)

    applier._apply = slow  # type: ignore[method-assign]
    _append(store, project, "room-a", 0)
    assert applier._turn() == 1
    _append(store, project, "room-a", 1)
    assert applier._turn() == 1
    assert paused.asked == []


def test_a_round_that_applied_nothing_makes_the_next_wait_for_nothing(setup: Setup) -> None:
    store, project, applier, paused = setup
    assert applier._turn() == 0
    _append(store, project, "room-a", 0)
    assert applier._turn() == 1
    assert paused.asked == []


def test_a_partitions_turn_ends_once_its_time_is_up_and_the_others_still_get_theirs(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, project, applier, paused = setup
    count = store.parts or 16
    busy, other = rooms_apart(project.id, count)
    part = part_of(project.id, busy, count)
    also = next(f"room-{n}" for n in range(1000) if part_of(project.id, f"room-{n}", count) == part)
    for n in range(100):  # two rooms of one partition: more than two transactions take
        _append(store, project, busy, n)
        _append(store, project, also, n)
    _append(store, project, other, 0)

    def slow(*args: object) -> int:
        paused.clock.now += TURN  # each transaction uses up a turn
        return apply_pending(*args)  # type: ignore[arg-type]

    def slow_together(*args: object) -> dict[int, int]:
        taken = apply_parts(*args)  # type: ignore[arg-type]
        paused.clock.now += TURN * sum(1 for rows in taken.values() if rows)  # theirs, each
        return taken

    monkeypatch.setattr(applier_module, "apply_pending", slow)
    monkeypatch.setattr(applier_module, "apply_parts", slow_together)
    assert applier._turn() == APPLY_ROWS + 1  # a transaction of the busy one, and the other's
    assert pending_rows(store.database, part_of(project.id, other, count)) == 0
    assert pending_rows(store.database, part) == 200 - APPLY_ROWS  # for its next turns
    assert applier._next_round == 0.0  # which begin at once
    while applier._turn():
        pass
    assert pending_rows(store.database) == 0
    assert paused.asked == []


def test_on_sqlite_several_partitions_go_in_one_transaction(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, project, applier, _ = setup
    if not store.database.sqlite:
        pytest.skip("PostgreSQL's applier threads apply partitions side by side instead")
    rooms = [f"room-{n}" for n in range(40)]
    for n, room in enumerate(rooms):
        _append(store, project, room, n)
    count = store.parts or 16
    parts = {part_of(project.id, room, count) for room in rooms}
    assert len(parts) > 4
    transactions: list[dict[int, int]] = []

    def counted(*args: object) -> dict[int, int]:
        taken = apply_parts(*args)  # type: ignore[arg-type]
        transactions.append(taken)
        return taken

    monkeypatch.setattr(applier_module, "apply_parts", counted)
    assert applier._turn() == len(rooms)
    assert sum(transactions[0].values()) == len(rooms)  # all of them in the first
    assert {part for part, rows in transactions[0].items() if rows} == parts
    assert pending_rows(store.database) == 0
