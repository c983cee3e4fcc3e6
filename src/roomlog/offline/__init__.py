"""`roomlog sessionize`: NDJSON events in, meeting sessions out, within a memory budget.

Events may come in any order. Every size takes the batch engine; only how the events reach
it changes with the budget (`--memory`):
- An input that fits (`events_within(memory)` events) is read into columns and run at once.
- A longer one is spilled by room partition (`spill.py`): a hash of each room picks one of
  `count` partitions (`partitions.py`), each partition is read back and run through the
  batch engine alone, and its meetings are encoded to a spool file; the body is written
  newest first across the partitions at the end (`output.py`). A room never splits across
  partitions, so each partition's sessions are those of the whole input. The rest of a file
  (not of stdin) is read in two halves at once, the second by a worker process that spills
  with the same hash.
- The partitions run in worker processes, one per core (at most two), each holding one
  partition at a time; `count` makes a partition hold about two thirds of the budget's share
  of each holder (the workers and this process), counted from the part of a file read when
  the budget was full, else as if the input were eight times the budget (stdin). A partition
  that comes out bigger than its share (rooms that hash together, an input longer than
  guessed) is split again with another hash; one that holds a single room too big runs the
  incremental engine over sorted runs of that room (`runs.py`), whose memory is a run and the
  room's open presences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Final

from roomlog.domain.batch import room_wide_of
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.offline.output import InMemory, Spooled
from roomlog.offline.reading import Counts, Lines, Report, halves, read_chunk

MB: Final = 1 << 20
DEFAULT_MEMORY: Final = 512 * MB
# The process's own memory before any event (the interpreter, numpy, msgspec, roomlog), and
# the peak bytes per event of the in-memory path (the columns read, the engine's arrays, the
# sessions): measured with `benchmarks/sessionize.py` (docs/PERFORMANCE.md).
BASE_MEMORY: Final = 64 * MB
EVENT_MEMORY: Final = 400


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
    progress: Callable[[], float] | None = None,
    limit: int | None = None,
    workers: int | None = None,
    file: IO[bytes] | None = None,
) -> Outcome:
    """Every room's sessions at `now` from NDJSON `lines`, within `memory` bytes. `progress`
    says which part of the input has been read, where that is known (a file); `limit` sets
    the events held at once instead of `memory` (tests force tiny ones); `workers`, the
    processes that run the partitions of a spilled input (default: one per core, at most
    two). Where `lines` are those of `file`, a regular file, the part of it not yet read when
    the budget is full is read in two halves at once."""
    limit = limit or events_within(memory)
    counts = Counts()
    source = Lines(lines)
    first, done = read_chunk(source, limit, now, report, counts)
    # A full chunk: look one line ahead before spilling.
    if done or source.at_end():
        wide = room_wide_of(counts.room_events)
        return Outcome(counts, InMemory(first.table(now, rules, tenant, wide, every_room=True)))
    # Spilling needs more modules than an input that fits: imported only then, since
    # `roomlog sessionize` pays for each import at every start.
    from roomlog.offline.spill import spilled  # noqa: PLC0415

    estimate = round(len(first) / progress()) if progress is not None else 8 * limit
    # Handed over in a list, which `spilled` empties: this frame must not keep the chunk
    # alive while the rest of the input is spilled and run.
    held = [first]
    del first
    second = None
    if file is not None:
        # The line looked at ahead is the first of the rest.
        source.lines, second = halves(file, [next(source.lines)])
    output, partitions = spilled(
        held, source, estimate, limit, now, report, counts, rules, tenant, workers, second
    )
    return Outcome(counts, output, partitions)
