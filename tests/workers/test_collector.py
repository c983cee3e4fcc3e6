"""The applier's collector keeper: the room cache out of full collections while it applies,
everything collected once it is idle."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from roomlog.workers import collector
from roomlog.workers.collector import Keeper


class _Cycle:
    def __init__(self) -> None:
        self.me = self


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_cycle_frozen_while_applying_is_collected_once_idle() -> None:
    clock = _Clock()
    keeper = Keeper(clock)
    cycle = _Cycle()
    dead = weakref.ref(cycle)
    clock.now += collector.FREEZE_EVERY
    keeper.worked()
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert dead() is not None  # frozen: a full collection no longer walks it
    clock.now += collector.IDLE_FOR / 2
    keeper.idle()  # idle for too short a time
    assert dead() is not None
    clock.now += collector.COLLECT_IDLE_AFTER
    keeper.idle()
    assert dead() is None
    assert gc.get_freeze_count() == 0


def test_an_idle_keeper_that_applied_nothing_collects_nothing() -> None:
    clock = _Clock()
    keeper = Keeper(clock)
    clock.now += collector.FREEZE_EVERY
    keeper.worked()
    clock.now += collector.COLLECT_IDLE_AFTER
    keeper.idle()
    gc.freeze()  # anything frozen from here on stays frozen while nothing is applied
    clock.now += collector.COLLECT_IDLE_AFTER * 2
    keeper.idle()
    assert gc.get_freeze_count() > 0


def test_a_keeper_never_idle_collects_every_so_often() -> None:
    clock = _Clock()
    keeper = Keeper(clock)
    cycle = _Cycle()
    dead = weakref.ref(cycle)
    clock.now += collector.FREEZE_EVERY
    keeper.worked()
    del cycle
    while clock.now < 1000.0 + collector.COLLECT_AT_LEAST:
        assert dead() is not None
        clock.now += collector.FREEZE_EVERY
        keeper.worked()
    assert dead() is None
