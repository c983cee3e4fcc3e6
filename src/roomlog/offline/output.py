"""Daily's `/v1/meetings` body, `{"total_count": N, "data": [...]}`, newest session first:
written from one table of sessions, or from meetings spooled partition by partition."""

from __future__ import annotations

import mmap
import re
from itertools import repeat
from typing import IO, Final, NamedTuple

import msgspec
import numpy as np

from roomlog.domain.batch import Ints, SessionTable
from roomlog.views.daily import meeting_objects

# Meetings made and written at a time.
_BATCH: Final = 1_000
# Meetings written between two releases of the spool's pages (about 30 MB of them).
_RELEASE: Final = 50 * _BATCH
_NEXT: Final = re.compile(rb',\{"id":"')


class InMemory:
    """Every session in one table, already newest first."""

    def __init__(self, table: SessionTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def write(self, out: IO[bytes]) -> None:
        encoder = msgspec.json.Encoder()
        table = self.table
        out.write(b'{"total_count":%d,"data":[' % len(table))
        for i in range(0, len(table), _BATCH):
            if i:
                out.write(b",")
            last = min(i + _BATCH, len(table))
            out.write(encoder.encode(meeting_objects(table, i, last))[1:-1])
        out.write(b"]}\n")
        out.flush()


class Encoded(NamedTuple):
    """A table's meetings as JSON, in batches, with each one's start, room and place in its
    batch; made where the table is (a worker process), written to the spool by the parent."""

    batches: list[bytes]
    starts: Ints
    rooms: list[str]
    batch: Ints  # the batch of each meeting
    begins: Ints  # where each begins in its batch
    ends: Ints


def encoded(table: SessionTable) -> Encoded:
    """Each meeting of `table` as Daily's JSON."""
    encode = msgspec.json.Encoder().encode
    batches: list[bytes] = []
    begins: list[Ints] = []
    ends: list[Ints] = []
    for i in range(0, len(table), _BATCH):
        last = min(i + _BATCH, len(table))
        # `[{"id":"…",…},{"id":"…",…}]`: a meeting begins at `{"id":"` after the bracket or
        # a comma, which no string inside one can hold unescaped.
        data = encode(meeting_objects(table, i, last))
        starts = np.array([1, *(m.start() + 1 for m in _NEXT.finditer(data))], np.int64)
        batches.append(data)
        begins.append(starts)
        ends.append(np.append(starts[1:] - 1, len(data) - 1))
    sizes = [len(b) for b in begins]
    return Encoded(
        batches,
        table.start,
        table.rooms,
        np.repeat(np.arange(len(batches), dtype=np.int64), sizes),
        np.concatenate(begins) if begins else np.empty(0, np.int64),
        np.concatenate(ends) if ends else np.empty(0, np.int64),
    )


class Spooled:
    """Meetings encoded as JSON table by table into a temporary file, with each one's start,
    room and place, and written newest first across the tables at the end. Memory holds four
    numbers and a room name per session, not the sessions."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        # Every room's code: each meeting keeps its room's code, not its own copy of the name.
        self.names: dict[str, int] = {}
        self._rooms: list[Ints] = []
        self._count = 0
        self._starts: list[Ints] = []
        self._offsets: list[Ints] = []
        self._lengths: list[Ints] = []

    def __len__(self) -> int:
        return self._count

    def put(self, found: Encoded) -> None:
        """Write the meetings of one table to the spool."""
        first = self.spool.seek(0, 2)
        sizes = np.fromiter(map(len, found.batches), np.int64, len(found.batches))
        self.spool.write(b"".join(found.batches))
        at = first + np.cumsum(sizes) - sizes
        self._offsets.append(at[found.batch] + found.begins)
        self._lengths.append(found.ends - found.begins)
        self._starts.append(found.starts)
        names = self.names
        # `len(names)` is taken just before each `setdefault`: a new room gets the next code.
        codes = np.fromiter(
            map(names.setdefault, found.rooms, map(len, repeat(names))), np.int64, len(found.rooms)
        )
        self._rooms.append(codes)
        self._count += len(found.rooms)

    def write(self, out: IO[bytes]) -> None:
        count = len(self)
        out.write(b'{"total_count":%d,"data":[' % count)
        if count:
            self.spool.flush()
            # Each room code's rank among the names, in the order of Python's string compare.
            by_name = sorted(self.names)
            codes = np.fromiter(map(self.names.__getitem__, by_name), np.int64, len(by_name))
            rank = np.empty(len(self.names), np.int64)
            rank[codes] = np.arange(len(by_name))
            ranks = rank[np.concatenate(self._rooms)]
            # Daily's order: latest start first, then room name, both descending.
            order = np.lexsort((ranks, np.concatenate(self._starts)))[::-1]
            offsets = np.concatenate(self._offsets)[order].tolist()
            lengths = np.concatenate(self._lengths)[order].tolist()
            with mmap.mmap(self.spool.fileno(), 0, access=mmap.ACCESS_READ) as spooled:
                for i in range(0, count, _BATCH):
                    if i:
                        out.write(b",")
                    if i % _RELEASE == 0:
                        # The pages read so far stay in the page cache, not in this process.
                        spooled.madvise(mmap.MADV_DONTNEED)
                    out.write(
                        b",".join(
                            spooled[o : o + n]
                            for o, n in zip(
                                offsets[i : i + _BATCH], lengths[i : i + _BATCH], strict=True
                            )
                        )
                    )
        out.write(b"]}\n")
        out.flush()
