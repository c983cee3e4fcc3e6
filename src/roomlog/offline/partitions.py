"""Events spilled by room partition: a hash of the room picks one of `count` partitions, so a
room never splits across them. Each partition's events are written, in pieces, to one
temporary file in a compact binary form (msgpack: the stamps as raw int64 bytes, the rooms as
int32 codes into the names kept in memory, then the participant ids, user ids and user
names). A partition is read back whole, as columns, to run through the batch engine."""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Iterator
from itertools import repeat
from operator import itemgetter
from typing import IO, Final, NamedTuple, TypeVar

import msgspec
import numpy as np

from roomlog.domain.batch import Ints
from roomlog.offline.reading import Chunk

# Events gathered across partitions before they are written; bounds the spill's own memory.
FLUSH_EVENTS: Final = 65_536
# The most partitions one split makes.
MOST: Final = 4_096

# A piece: the stamps (int64 bytes), the rooms' codes (int32 bytes, into `Partitions.names`),
# then the participant ids, user ids and user names.
Piece = tuple[bytes, bytes, list[str], list[str | None], list[str | None]]
_piece: Final = msgspec.msgpack.Decoder(Piece)
_encode: Final = msgspec.msgpack.Encoder().encode
T = TypeVar("T")


def partitions_for(events: int, limit: int) -> int:
    """How many partitions make each hold about two thirds of `limit` events, at least two."""
    return max(2, min(MOST, math.ceil(events * 1.5 / limit)))


class Index(NamedTuple):
    """Partitions as another process needs them to read them: the rooms by code, each room
    code's partition, the pieces of each partition, the events in each."""

    names: list[str]
    partition: Ints
    pieces: list[list[tuple[int, int]]]
    events: list[int]


class Partitions:
    """`count` partitions of events in one spool file; `salt` makes a split of a partition
    hash its rooms differently from the split that made it."""

    def __init__(self, spool: IO[bytes], count: int, salt: int = 0) -> None:
        self.spool = spool
        self.count = count
        self.salt = salt
        self.events = [0] * count
        self.names: list[str] = []  # the rooms by code
        self.codes: dict[str, int] = {}  # each room's code
        self._partition = np.empty(0, np.int64)  # by room code
        self._pieces: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        self._held = Chunk()

    @property
    def rooms(self) -> list[int]:
        """How many distinct rooms each partition holds."""
        return [int(n) for n in np.bincount(self._partition, minlength=self.count)]

    def room_names(self, p: int) -> set[str]:
        """The rooms of partition `p`."""
        return {self.names[c] for c in np.flatnonzero(self._partition == p).tolist()}

    def index(self) -> Index:
        """What another process needs to read these partitions."""
        return Index(self.names, self._partition, self._pieces, self.events)

    @classmethod
    def read_from(cls, spool: IO[bytes], index: Index) -> Partitions:
        """The partitions another process wrote to `spool`, to be read."""
        parts = cls(spool, len(index.pieces))
        parts.names, parts._partition = index.names, index.partition
        parts._pieces, parts.events = index.pieces, index.events
        return parts

    def add(self, chunk: Chunk) -> None:
        """Take the events of `chunk` (it may be dropped afterwards)."""
        if len(chunk) > FLUSH_EVENTS:
            self._write(chunk)
            return
        self._held.extend(
            chunk.stamp_column(),
            chunk.rooms,
            chunk.participants,
            chunk.user_ids,
            chunk.user_names,
        )
        if len(self._held) >= FLUSH_EVENTS:
            self.flush()

    def flush(self) -> None:
        if len(self._held):
            held, self._held = self._held, Chunk()
            self._write(held)

    def _room_codes(self, rooms: list[str]) -> Ints:
        """Each room's code, placing rooms seen for the first time in their partitions."""
        known = len(self.codes)
        codes = _codes_in(rooms, self.codes)
        if len(self.codes) > known:
            new = list(self.codes)[known:]
            self.names += new
            placed = (
                np.fromiter(
                    (zlib.crc32(n.encode("utf-8", "surrogatepass"), self.salt) for n in new),
                    np.int64,
                    len(new),
                )
                % self.count
            )
            self._partition = np.concatenate([self._partition, placed])
        return codes

    def _write(self, chunk: Chunk) -> None:
        """Write `chunk`'s events, one piece per partition they fall in."""
        codes = self._room_codes(chunk.rooms)
        part = self._partition[codes]
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.count + 1)).tolist()
        stamps = chunk.stamp_column()[order]
        codes = codes[order].astype(np.int32)
        # Each column in partition order at once, then cut: C loops, not a call per event.
        pick = _picker(order.tolist())
        participants = pick(chunk.participants)
        user_ids = pick(chunk.user_ids)
        user_names = pick(chunk.user_names)
        for p in range(self.count):
            lo, hi = bounds[p], bounds[p + 1]
            if lo == hi:
                continue
            data = _encode(
                (
                    stamps[lo:hi].tobytes(),
                    codes[lo:hi].tobytes(),
                    participants[lo:hi],
                    user_ids[lo:hi],
                    user_names[lo:hi],
                )
            )
            offset = self.spool.seek(0, 2)
            self.spool.write(data)
            self._pieces[p].append((offset, len(data)))
            self.events[p] += hi - lo

    def pieces(self, p: int, most: int = 0) -> Iterator[Chunk]:
        """Partition `p`'s events as chunks of about `most` events (0: all in one)."""
        chunk = Chunk()
        names = self.names
        self.spool.flush()
        # Read by position: processes forked after the spill share the file's offset.
        fd = self.spool.fileno()
        for offset, size in self._pieces[p]:
            stamps, codes, participants, user_ids, user_names = _piece.decode(
                os.pread(fd, size, offset)
            )
            rooms = list(map(names.__getitem__, np.frombuffer(codes, np.int32).tolist()))
            chunk.extend(np.frombuffer(stamps, np.int64), rooms, participants, user_ids, user_names)
            if most and len(chunk) >= most:
                yield chunk
                chunk = Chunk()
        if len(chunk):
            yield chunk


def _picker(positions: list[int]) -> Callable[[list[T]], tuple[T, ...]]:
    """Picks the items at `positions` of a list, in that order."""
    if len(positions) == 1:
        return lambda items: (items[positions[0]],)
    return itemgetter(*positions)


def _codes_in(rooms: list[str], names: dict[str, int]) -> Ints:
    """Each room's code (the rank of its first appearance in `names`), filling `names`."""
    # `len(names)` is taken just before each `setdefault`: a new room gets the next code.
    return np.fromiter(map(names.setdefault, rooms, map(len, repeat(names))), np.int64, len(rooms))


class Spill:
    """The partitions of one input written by several processes, each to its own spool with
    the same hash: partition `p` is the union of their partitions `p`."""

    def __init__(self, written: list[Partitions]) -> None:
        self.written = written
        self.count = written[0].count
        self.events = [sum(w.events[p] for w in written) for p in range(self.count)]
        # Distinct rooms in each: a room may have been written by more than one process.
        if len(written) == 1:
            self.rooms = written[0].rooms
        else:
            self.rooms = [
                len(set().union(*(w.room_names(p) for w in written))) for p in range(self.count)
            ]

    def pieces(self, p: int, most: int = 0) -> Iterator[Chunk]:
        """Partition `p`'s events as chunks of about `most` events (0: all in one)."""
        if most:
            for written in self.written:
                yield from written.pieces(p, most)
            return
        whole = Chunk()
        for written in self.written:
            for chunk in written.pieces(p):
                whole.extend(
                    chunk.stamp_column(),
                    chunk.rooms,
                    chunk.participants,
                    chunk.user_ids,
                    chunk.user_names,
                )
        if len(whole):
            yield whole
