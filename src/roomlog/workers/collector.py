"""How often a long-running process runs Python's cyclic garbage collector.

A server and its applier keep the decoded states of up to 20,000 rooms (`Store`'s cache),
and the write path allocates many short-lived objects per event. At Python's default pace (a
young collection every 700 allocations, an older one every ten of those) the collector
walked that cache often enough to take a quarter to two-fifths of an applier's CPU time
(`benchmarks/applier.py`, docs/PERFORMANCE.md). Collections 14 times rarer keep memory in
check (the states hold no reference cycles; what cycles there are, are short-lived) at a
fraction of that cost.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Final

YOUNG: Final = 10_000  # allocations between young collections (Python's default: 700)


def pace() -> None:
    """Collect young objects every `YOUNG` allocations, the older generations as before."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


FREEZE_EVERY: Final = 1.0  # seconds between moving what survived into the permanent generation
COLLECT_IDLE_AFTER: Final = 30.0  # seconds after the last full collection, when idle
IDLE_FOR: Final = 2.0  # seconds without anything applied that make the applier idle
COLLECT_AT_LEAST: Final = 600.0  # seconds after which a full collection runs even when busy


class Keeper:
    """Keeps full collections out of a busy applier's way.

    A full collection walks every object the process tracks, the room cache's included:
    0.76 s in an applier holding 20,000 rooms, during which nothing is applied (lag at a
    steady 20,000 events/s jumped to 2 s, docs/PERFORMANCE.md). While it applies, the
    applier moves what survived into the permanent generation (`gc.freeze`, which costs
    nothing), so an automatic full collection only walks what is new. Once it has had
    nothing to apply for 2 s after applying (at most every 30 s), and under load at least
    every ten minutes, it gives those objects back and collects them all, so that a
    reference cycle frozen while alive but dead since is freed then.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.frozen_at = self.collected_at = clock()
        self.worked_since = False  # whether anything was applied since the last collection
        self.worked_at = self.frozen_at

    def worked(self) -> None:
        """After a pass that applied something."""
        self.worked_since = True
        now = self.worked_at = self.clock()
        if now - self.collected_at >= COLLECT_AT_LEAST:
            self._collect(now)
        elif now - self.frozen_at >= FREEZE_EVERY:
            gc.freeze()
            self.frozen_at = now

    def idle(self) -> None:
        """After a pass that found nothing to apply."""
        now = self.clock()
        if (
            self.worked_since
            and now - self.worked_at >= IDLE_FOR
            and now - self.collected_at >= COLLECT_IDLE_AFTER
        ):
            self._collect(now)

    def _collect(self, now: float) -> None:
        gc.unfreeze()
        gc.collect()
        self.collected_at = self.frozen_at = now
        self.worked_since = False
