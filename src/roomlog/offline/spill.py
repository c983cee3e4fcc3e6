"""The path of an input longer than the memory budget: spilled by room partition, each
partition run through the batch engine alone (see `roomlog.offline`)."""

from __future__ import annotations

import tempfile
from typing import Final

from roomlog.domain.batch import SessionTable
from roomlog.domain.rules import Rules
from roomlog.offline.output import Spooled
from roomlog.offline.partitions import FLUSH_EVENTS, Partitions, partitions_for
from roomlog.offline.reading import Chunk, Counts, Lines, Report, read_chunk
from roomlog.offline.runs import incremental

# Events read at a time once the input is being spilled.
SPILL_CHUNK: Final = 262_144
# How many times a partition may be split again before its rooms run incrementally.
MAX_SPLITS: Final = 3


def spilled(
    first: Chunk,
    source: Lines,
    estimate: int,
    limit: int,
    now: int,
    report: Report,
    counts: Counts,
    rules: Rules,
    tenant: str,
) -> tuple[Spooled, int]:
    """The sessions of `first` and the rest of `source` (about `estimate` events in all),
    holding at most `limit` events at once; and the number of partitions first made."""
    # The meetings' spool outlives this call: the outcome writes from it (the file has no
    # name, so nothing is left behind whenever the process ends).
    output = Spooled(tempfile.TemporaryFile(prefix="roomlog-meetings-"))  # noqa: SIM115
    with tempfile.TemporaryFile(prefix="roomlog-events-") as spool:
        parts = Partitions(spool, partitions_for(estimate, limit))
        parts.add(first)
        del first
        done = False
        while not done:
            chunk, done = read_chunk(source, min(limit, SPILL_CHUNK), now, report, counts)
            parts.add(chunk)
            del chunk
        parts.flush()
        for p in range(parts.count):
            _run(parts, p, limit, now, rules, tenant, output, 0)
    return output, parts.count


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
