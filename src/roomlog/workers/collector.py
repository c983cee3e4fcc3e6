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
from typing import Final

YOUNG: Final = 10_000  # allocations between young collections (Python's default: 700)


def pace() -> None:
    """Collect young objects every `YOUNG` allocations, the older generations as before."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
