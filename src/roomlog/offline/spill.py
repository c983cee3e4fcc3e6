"""The path of an input longer than the memory budget: spilled by room partition, each
partition run through the batch engine alone (see `roomlog.offline`)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO, Final

import numpy as np

from roomlog.domain.batch import RoomWide, SessionTable, room_wide_of, session_table, who_in
from roomlog.domain.rules import Rules
from roomlog.offline.output import Encoded, Spooled, encoded
from roomlog.offline.partitions import FLUSH_EVENTS, Partitions, Spill, partitions_for
from roomlog.offline.reading import Chunk, Counts, Lines, Report, read_chunk
from roomlog.offline.runs import incremental

# Events read at a time once the input is being spilled.
SPILL_CHUNK: Final = 262_144
# How many times a partition may be split again before its rooms run incrementally.
MAX_SPLITS: Final = 3
# The most worker processes that run partitions.
WORKERS: Final = 2


def spilled(
    held: list[Chunk],
    source: Lines,
    estimate: int,
    limit: int,
    now: int,
    report: Report,
    counts: Counts,
    rules: Rules,
    tenant: str,
    workers: int | None = None,
    second: Iterator[bytes] | None = None,
) -> tuple[Spooled, int]:
    """The sessions of the chunk `held` (taken out of it), the rest of `source` and the lines
    of `second` (about `estimate` events in all), holding at most `limit` events at once; and
    the number of partitions first made.

    `second`, the second half of a file, is read and spilled by a worker process while this
    one reads the first. The partitions are then run by `workers` processes (by default as
    many as there are cores, at most `WORKERS`), each holding one partition at a time: a
    partition then holds at most `limit` divided by the workers and this process.
    """
    if workers is None:
        workers = min(WORKERS, os.cpu_count() or 1)
    workers = max(1, workers)
    # This process holds a part too while they run: the spill's index and the meetings
    # coming back.
    share = max(limit // (workers + 1), 1)
    # The meetings' spool outlives this call: the outcome writes from it (the file has no
    # name, so nothing is left behind whenever the process ends).
    output = Spooled(tempfile.TemporaryFile(prefix="roomlog-meetings-"))  # noqa: SIM115
    with (
        tempfile.TemporaryFile(prefix="roomlog-events-") as spool,
        tempfile.TemporaryFile(prefix="roomlog-events-") as other,
    ):
        parts = Partitions(spool, partitions_for(estimate, share))
        parts.add(held.pop())
        reader = None
        if second is not None and workers > 1:
            reader = _Reader(second, other, parts.count, now)
        else:
            # One process reads it all: the second half follows the first.
            source.lines = itertools.chain(source.lines, second or ())
        done = False
        while not done:
            chunk, done = read_chunk(source, min(limit, SPILL_CHUNK), now, report, counts)
            parts.add(chunk)
            del chunk
        parts.flush()
        spool.flush()
        written = [parts]
        if reader is not None:
            written.append(reader.finish(source.taken, report, counts))
        spill = Spill(written)
        wide = room_wide_of(counts.room_events)
        job = _Job(spill, share, now, rules, tenant, wide)
        biggest_first = sorted(range(spill.count), key=lambda p: -spill.events[p])
        if workers == 1:
            for p in biggest_first:
                for found in job.run(p):
                    output.put(found)
        else:
            global _JOB  # noqa: PLW0603 - what the forked workers run, inherited at the fork
            _JOB = job
            context = multiprocessing.get_context("fork")
            try:
                with context.Pool(workers) as pool:
                    for results in pool.imap_unordered(_work, biggest_first):
                        for found in results:
                            output.put(found)
            finally:
                _JOB = None
        # Rooms whose only events are snapshots: no partition holds them.
        seen = set().union(*(w.room_names(p) for w in written for p in range(w.count)))
        alone = {room: found for room, found in wide.items() if room not in seen}
        if alone:
            nothing = np.empty(0, np.int64)
            who = who_in([], [], [])
            output.put(encoded(session_table(nothing, [], [], who, now, rules, tenant, alone)))
    return output, spill.count


class _Reader:
    """A forked process that reads `lines` and spills them to `spool` in `count` partitions
    hashed as this process hashes them."""

    def __init__(self, lines: Iterator[bytes], spool: IO[bytes], count: int, now: int) -> None:
        self.spool = spool
        context = multiprocessing.get_context("fork")
        self._answer, answer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_read_half, args=(lines, spool, count, now, answer), daemon=True
        )
        self._process.start()
        answer.close()

    def finish(self, before: int, report: Report, counts: Counts) -> Partitions:
        """Its partitions, once it is done; its invalid lines reported, numbered after the
        `before` lines of the first half, and its counts added to `counts`."""
        index, found, problems = self._answer.recv()
        self._process.join()
        for number, message in problems:
            report(before + number, message)
        counts.events += found.events
        counts.invalid += found.invalid
        counts.future += found.future
        counts.room_events += found.room_events
        return Partitions.read_from(self.spool, index)


def _read_half(
    lines: Iterator[bytes], spool: IO[bytes], count: int, now: int, answer: Connection
) -> None:
    problems: list[tuple[int, str]] = []
    found = Counts()
    source = Lines(lines)
    parts = Partitions(spool, count)
    done = False
    while not done:
        chunk, done = read_chunk(
            source, SPILL_CHUNK, now, lambda n, m: problems.append((n, m)), found
        )
        parts.add(chunk)
        del chunk
    parts.flush()
    spool.flush()
    answer.send((parts.index(), found, problems))
    answer.close()


@dataclass(frozen=True, slots=True)
class _Job:
    parts: Spill
    limit: int
    now: int
    rules: Rules
    tenant: str
    room_wide: RoomWide

    def run(self, p: int) -> list[Encoded]:
        return self._run(self.parts, p, 0)

    def _run(self, parts: Spill | Partitions, p: int, splits: int) -> list[Encoded]:
        """Partition `p`'s meetings, encoded."""
        events, limit = parts.events[p], self.limit
        if not events:
            return []
        if events <= limit:
            return [
                encoded(c.table(self.now, self.rules, self.tenant, self.room_wide))
                for c in parts.pieces(p)
            ]
        if parts.rooms[p] > 1 and splits < MAX_SPLITS:
            with tempfile.TemporaryFile(prefix="roomlog-split-") as spool:
                split = Partitions(spool, partitions_for(events, limit), salt=splits + 1)
                for chunk in parts.pieces(p, most=FLUSH_EVENTS):
                    split.add(chunk)
                split.flush()
                return [
                    found for q in range(split.count) for found in self._run(split, q, splits + 1)
                ]
        pieces = parts.pieces(p, most=max(limit // 2, 1))
        sessions = incremental(pieces, limit, self.now, self.rules, self.tenant, self.room_wide)
        return [encoded(SessionTable.of(sessions, self.now))]


_JOB: _Job | None = None


def _work(p: int) -> list[Encoded]:
    """A worker's task: partition `p` of the job it inherited."""
    assert _JOB is not None
    return _JOB.run(p)
