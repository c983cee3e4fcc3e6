"""Events spilled by room partition: a hash of the room picks one of `count` partitions, so a
room never splits across them, and each partition's events are written to one temporary
file in a compact binary form (msgpack: the stamps as raw int64 bytes, the rooms as a list of
distinct names and one code per event, then the participant ids, user ids and user names).
A partition is read back whole, as columns, to run through the batch engine."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from itertools import repeat
from typing import IO, Final

import msgspec
import numpy as np

from roomlog.domain.batch import Ints
from roomlog.offline.reading import Chunk

# Events gathered across partitions before they are written; bounds the spill's own memory.
FLUSH_EVENTS: Final = 65_536
# The most partitions one split makes.
MOST: Final = 4_096

Piece = tuple[bytes, list[str], bytes, list[str], list[str | None], list[str | None]]
_piece: Final = msgspec.msgpack.Decoder(Piece)
_encode: Final = msgspec.msgpack.Encoder().encode


def partitions_for(events: int, limit: int) -> int:
    """How many partitions make each hold about two thirds of `limit` events, at least two."""
    return max(2, min(MOST, math.ceil(events * 1.5 / limit)))


class Partitions:
    """`count` partitions of events in one spool file; `salt` makes a split of a partition
    hash its rooms differently from the split that made it."""

    def __init__(self, spool: IO[bytes], count: int, salt: int = 0) -> None:
        self.spool = spool
        self.count = count
        self.salt = salt
        self.events = [0] * count
        self.rooms = [0] * count  # distinct rooms in each
        self._pieces: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        self._of: dict[str, int] = {}
        self._held = Chunk()

    def of(self, room: str) -> int:
        found = self._of.get(room)
        if found is None:
            data = room.encode("utf-8", "surrogatepass")
            found = self._of[room] = zlib.crc32(data, self.salt) % self.count
            self.rooms[found] += 1
        return found

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

    def _write(self, chunk: Chunk) -> None:
        """Write `chunk`'s events, one piece per partition they fall in."""
        stamps = chunk.stamp_column()
        part = np.fromiter(map(self.of, chunk.rooms), np.int64, len(chunk))
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.count + 1)).tolist()
        positions = order.tolist()
        for p in range(self.count):
            lo, hi = bounds[p], bounds[p + 1]
            if lo == hi:
                continue
            taken = positions[lo:hi]
            rooms = list(map(chunk.rooms.__getitem__, taken))
            names: dict[str, int] = {}
            codes = _room_codes(rooms, names)
            data = _encode(
                (
                    stamps[order[lo:hi]].tobytes(),
                    list(names),
                    codes.tobytes(),
                    list(map(chunk.participants.__getitem__, taken)),
                    list(map(chunk.user_ids.__getitem__, taken)),
                    list(map(chunk.user_names.__getitem__, taken)),
                )
            )
            offset = self.spool.seek(0, 2)
            self.spool.write(data)
            self._pieces[p].append((offset, len(data)))
            self.events[p] += hi - lo

    def pieces(self, p: int, most: int = 0) -> Iterator[Chunk]:
        """Partition `p`'s events as chunks of about `most` events (0: all in one)."""
        chunk = Chunk()
        for offset, size in self._pieces[p]:
            self.spool.seek(offset)
            stamps, names, codes, participants, user_ids, user_names = _piece.decode(
                self.spool.read(size)
            )
            rooms = list(map(names.__getitem__, np.frombuffer(codes, np.int32).tolist()))
            chunk.extend(np.frombuffer(stamps, np.int64), rooms, participants, user_ids, user_names)
            if most and len(chunk) >= most:
                yield chunk
                chunk = Chunk()
        if len(chunk):
            yield chunk


def _room_codes(rooms: list[str], names: dict[str, int]) -> Ints:
    """Each room's code (the rank of its first appearance), filling `names`."""
    # `len(names)` is taken just before each `setdefault`: a new room gets the next code.
    return np.fromiter(map(names.setdefault, rooms, map(len, repeat(names))), np.int32, len(rooms))
