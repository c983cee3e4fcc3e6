"""`roomlog sessionize`: NDJSON events in, meeting sessions out, within a memory budget.

Events may come in any order. Every size takes the batch engine; only how the events reach
it changes with the budget (`--memory`):
- An input that fits (`events_within(memory)` events) is read into columns and run at once.
- A longer one is spilled by room partition: a hash of each room picks one of `count`
  partitions (`partitions.py`), each partition is read back and run through the batch engine
  alone, and its meetings are encoded to a spool file; the body is written newest first
  across the partitions at the end (`output.py`). A room never splits across partitions, so
  each partition's sessions are those of the whole input.
- `count` makes a partition hold about two thirds of the budget: from the file's size when
  it is known (the bytes per event of the first part read), else as if the input were eight
  times the budget (stdin). A partition that comes out bigger than the budget (rooms that hash
  together, an input longer than guessed) is split again with another hash; one that holds a
  single room too big for the budget runs the incremental engine over sorted runs of that
  room (`runs.py`), whose memory is a run and the room's open presences.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Final

from roomlog.domain.batch import SessionTable
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.offline.output import InMemory, Spooled
from roomlog.offline.partitions import FLUSH_EVENTS, Partitions, partitions_for
from roomlog.offline.reading import Counts, Lines, Report, read_chunk
from roomlog.offline.runs import incremental

MB: Final = 1 << 20
DEFAULT_MEMORY: Final = 512 * MB
# The process's own memory before any event (the interpreter, numpy, msgspec, roomlog), and
# the peak bytes per event of the in-memory path (the columns read, the engine's arrays, the
# sessions): measured with `benchmarks/sessionize.py` (docs/PERFORMANCE.md).
BASE_MEMORY: Final = 64 * MB
EVENT_MEMORY: Final = 400
# Events read at a time once the input is being spilled.
SPILL_CHUNK: Final = 262_144
# How many times a partition may be split again before its rooms run incrementally.
MAX_SPLITS: Final = 3


def events_within(memory: int) -> int:
    """How many events the batch engine may hold at once within `memory` bytes."""
    return max(1_000, (memory - BASE_MEMORY) // EVENT_MEMORY)


@dataclass(slots=True)
class Outcome:
    """What a run of `sessionize_lines` found, and its sessions, ready to be written."""

    counts: Counts
    result: InMemory | Spooled
    partitions: int = 1

    @property
    def events(self) -> int:
        return self.counts.events

    @property
    def invalid(self) -> int:
        return self.counts.invalid

    @property
    def future(self) -> int:
        return self.counts.future

    def write(self, out: IO[bytes]) -> None:
        """Daily's `/v1/meetings` body, newest first."""
        self.result.write(out)


def sessionize_lines(
    lines: Iterable[bytes],
    now: int,
    report: Report,
    rules: Rules = DEFAULT_RULES,
    tenant: str = "default",
    memory: int = DEFAULT_MEMORY,
    size: int | None = None,
    limit: int | None = None,
) -> Outcome:
    """Every room's sessions at `now` from NDJSON `lines` (`size` bytes, if known), within
    `memory` bytes; `limit` sets the events held at once instead (tests force tiny ones)."""
    limit = limit or events_within(memory)
    counts = Counts()
    source = Lines(lines)
    first, done = read_chunk(source, limit, now, report, counts)
    # A full chunk: look one line ahead before spilling.
    if done or source.at_end():
        return Outcome(counts, InMemory(first.table(now, rules, tenant)))
    read = max(len(first), 1)
    estimate = size * read // max(source.size, 1) if size else 8 * limit
    # The meetings' spool outlives this call: the outcome writes from it (the file has no
    # name, so nothing is left behind whenever the process ends).
    output = Spooled(tempfile.TemporaryFile(prefix="roomlog-meetings-"))  # noqa: SIM115
    with tempfile.TemporaryFile(prefix="roomlog-events-") as spool:
        parts = Partitions(spool, partitions_for(estimate, limit))
        parts.add(first)
        del first
        while not done:
            chunk, done = read_chunk(source, min(limit, SPILL_CHUNK), now, report, counts)
            parts.add(chunk)
            del chunk
        parts.flush()
        for p in range(parts.count):
            _run(parts, p, limit, now, rules, tenant, output, 0)
    return Outcome(counts, output, parts.count)


def _run(
    parts: Partitions,
    p: int,
    limit: int,
    now: int,
    rules: Rules,
    tenant: str,
    output: Spooled,
    splits: int,
) -> None:
    """Put partition `p`'s sessions in `output`."""
    events = parts.events[p]
    if not events:
        return
    if events <= limit:
        for chunk in parts.pieces(p):
            output.add(chunk.table(now, rules, tenant))
        return
    if parts.rooms[p] > 1 and splits < MAX_SPLITS:
        split = Partitions(parts.spool, partitions_for(events, limit), salt=splits + 1)
        for chunk in parts.pieces(p, most=FLUSH_EVENTS):
            split.add(chunk)
        split.flush()
        for q in range(split.count):
            _run(split, q, limit, now, rules, tenant, output, splits + 1)
        return
    sessions = incremental(parts.pieces(p, most=max(limit // 2, 1)), limit, now, rules, tenant)
    output.add(SessionTable.of(sessions, now))
