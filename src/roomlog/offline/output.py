"""Daily's `/v1/meetings` body, `{"total_count": N, "data": [...]}`, newest session first:
written from one table of sessions, or from meetings spooled partition by partition."""

from __future__ import annotations

import mmap
from typing import IO, Final

import msgspec
import numpy as np

from roomlog.domain.batch import Ints, SessionTable
from roomlog.views.daily import meeting_objects

# Meetings made and written at a time.
_BATCH: Final = 1_000


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


class Spooled:
    """Meetings encoded as JSON table by table into a temporary file, with each one's start,
    room and place, and written newest first across the tables at the end. Memory holds four
    numbers and a room name per session, not the sessions."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self.rooms: list[str] = []
        self._starts: list[Ints] = []
        self._offsets: list[Ints] = []
        self._lengths: list[Ints] = []

    def __len__(self) -> int:
        return len(self.rooms)

    def add(self, table: SessionTable) -> None:
        encode = msgspec.json.Encoder().encode
        for i in range(0, len(table), _BATCH):
            last = min(i + _BATCH, len(table))
            encoded = list(map(encode, meeting_objects(table, i, last)))
            lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
            offset = self.spool.seek(0, 2)
            self.spool.write(b"".join(encoded))
            self._offsets.append(offset + np.cumsum(lengths) - lengths)
            self._lengths.append(lengths)
        self._starts.append(table.start)
        self.rooms += table.rooms

    def write(self, out: IO[bytes]) -> None:
        count = len(self)
        out.write(b'{"total_count":%d,"data":[' % count)
        if count:
            self.spool.flush()
            names = sorted(set(self.rooms))
            rank = dict(zip(names, range(len(names)), strict=True))
            ranks = np.fromiter(map(rank.__getitem__, self.rooms), np.int64, count)
            # Daily's order: latest start first, then room name, both descending.
            order = np.lexsort((ranks, np.concatenate(self._starts)))[::-1]
            offsets = np.concatenate(self._offsets)[order].tolist()
            lengths = np.concatenate(self._lengths)[order].tolist()
            with mmap.mmap(self.spool.fileno(), 0, access=mmap.ACCESS_READ) as spooled:
                for i in range(0, count, _BATCH):
                    if i:
                        out.write(b",")
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
