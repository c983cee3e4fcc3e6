"""Reading NDJSON events into columns: blocks of lines decoded in C and checked with numpy,
a block with an invalid line read again line by line to report it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import IO, Final

import msgspec
import numpy as np

from roomlog.domain.batch import Ints, RoomWide, SessionTable, session_table, who_in
from roomlog.domain.events import (
    JOINED,
    LATEST_AT,
    MICROS,
    InvalidTime,
    RoomEvent,
    micros_from_at,
)
from roomlog.domain.rules import Rules
from roomlog.ingest.native import (
    CHAT,
    ROOM_TYPES,
    InvalidEvent,
    NativeEvent,
    kind_of,
    parse_item,
)

# Bytes read at a time from a half of a file.
_READ: Final = 1 << 20
# Lines decoded in one call; a block with an invalid line is read again line by line.
_LINES: Final = 16_384
_NUMBERS: Final = frozenset((int, float))

Report = Callable[[int, str], None]

_type, _room, _participant, _at, _user_id, _user_name = (
    attrgetter(name) for name in ("type", "room", "participant_id", "at", "user_id", "user_name")
)
_event_decoder: Final = msgspec.json.Decoder(NativeEvent)


@dataclass(slots=True)
class Counts:
    """What reading found: events kept, invalid lines, events stamped after `now`."""

    events: int = 0
    invalid: int = 0
    future: int = 0
    # Room ends and snapshots (SESSION-RULES step 1b): few, so kept aside, not in the columns.
    room_events: list[RoomEvent] = field(default_factory=list)


class Chunk:
    """Events as columns, in the order they were read."""

    __slots__ = ("participants", "rooms", "stamps", "user_ids", "user_names")

    def __init__(self) -> None:
        self.stamps: list[Ints] = []  # in parts, one per block of lines
        self.rooms: list[str] = []
        self.participants: list[str] = []
        self.user_ids: list[str | None] = []
        self.user_names: list[str | None] = []

    def __len__(self) -> int:
        return len(self.rooms)

    def add(self, stamps: Ints, events: list[NativeEvent]) -> None:
        self.stamps.append(stamps)
        self.rooms += map(_room, events)
        self.participants += map(_participant, events)
        self.user_ids += map(_user_id, events)
        self.user_names += map(_user_name, events)

    def extend(
        self,
        stamps: Ints,
        rooms: list[str],
        participants: list[str],
        user_ids: list[str | None],
        user_names: list[str | None],
    ) -> None:
        """Add events given as columns."""
        self.stamps.append(stamps)
        self.rooms += rooms
        self.participants += participants
        self.user_ids += user_ids
        self.user_names += user_names

    def stamp_column(self) -> Ints:
        """The stamps as one array (kept so, to be read again)."""
        if len(self.stamps) != 1:
            self.stamps = [np.concatenate(self.stamps) if self.stamps else np.empty(0, np.int64)]
        return self.stamps[0]

    def table(
        self,
        now: int,
        rules: Rules,
        tenant: str,
        room_wide: RoomWide | None = None,
        every_room: bool = False,
    ) -> SessionTable:
        """The sessions of these events with the room ends and snapshots `room_wide` of their
        rooms (`every_room`: of every room `room_wide` holds, whether or not it has events
        here)."""
        wide = room_wide if every_room else None
        if room_wide and not every_room:
            wide = {room: room_wide[room] for room in set(self.rooms) if room in room_wide}
        return session_table(
            self.stamp_column(),
            self.rooms,
            self.participants,
            who_in(self.participants, self.user_ids, self.user_names),
            now,
            rules,
            tenant,
            wide,
        )


class Lines:
    """The input's lines, taken in blocks, counting them for error reports."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.lines = iter(lines)
        self.taken = 0

    def block(self, most: int) -> tuple[int, list[bytes]]:
        """Up to `most` lines and the number of the first."""
        block = list(itertools.islice(self.lines, most))
        first = self.taken + 1
        self.taken += len(block)
        return first, block

    def at_end(self) -> bool:
        ahead = next(self.lines, None)
        if ahead is None:
            return True
        self.lines = itertools.chain((ahead,), self.lines)
        return False


def read_chunk(
    lines: Lines,
    limit: int,
    now: int,
    report: Report,
    outcome: Counts,
) -> tuple[Chunk, bool]:
    """Parse and check up to `limit` events; True once the input is used up.

    Invalid lines go to `report`; events stamped after `now` are counted and left out.
    """
    chunk = Chunk()
    while len(chunk) < limit:
        first, block = lines.block(min(_LINES, limit - len(chunk)))
        if not block:
            return chunk, True
        if not _read_block(block, chunk, now, outcome):
            _read_lines(first, block, chunk, now, report, outcome)
    return chunk, False


def _read_block(block: list[bytes], chunk: Chunk, now: int, outcome: Counts) -> bool:
    """Take a block of lines in a few calls, if every line is a presence event with its `at`
    in unix seconds in range; False, with nothing taken, if not."""
    try:
        # Line by line (a line holding two objects, or a part of one, is invalid), in C.
        events = list(map(_event_decoder.decode, block))
    except msgspec.DecodeError:
        return False
    at = list(map(_at, events))
    if not set(map(type, at)) <= _NUMBERS:
        return False
    seconds = np.fromiter(at, np.float64, len(at))
    if not np.all((seconds >= 0) & (seconds <= LATEST_AT)):
        return False
    # As `micros_from_unix`: `round(at * MICROS)`, the same float product rounded half to
    # even, and exact for whole seconds (up to 2.5e11 s, at * 15625 stays below 2^53).
    micros = np.rint(seconds * MICROS).astype(np.int64)
    joined = np.fromiter(map(JOINED.__eq__, map(_type, events)), np.bool_, len(events))
    stamps = micros * 2 + joined
    future = stamps > now * 2 + 1
    if future.any():
        outcome.future += int(future.sum())
        kept = np.flatnonzero(~future)
        stamps = stamps[kept]
        events = list(map(events.__getitem__, kept.tolist()))
    chunk.add(stamps, events)
    outcome.events += len(events)
    return True


def _room_event(number: int, line: bytes, now: int, report: Report, outcome: Counts) -> None:
    try:
        event = parse_item(line)
    except InvalidEvent as exc:
        outcome.invalid += 1
        report(number, str(exc))
        return
    assert isinstance(event, RoomEvent)
    if event.at > now:
        outcome.future += 1
        return
    outcome.room_events.append(event)
    outcome.events += 1


def _read_lines(
    first: int, block: list[bytes], chunk: Chunk, now: int, report: Report, outcome: Counts
) -> None:
    """Take a block line by line, reporting each invalid line with its number."""
    decode = _event_decoder.decode
    last_stamp = now * 2 + 1
    stamps: list[int] = []
    events: list[NativeEvent] = []
    for number, line in enumerate(block, start=first):
        if not line.strip():
            continue
        try:
            raw = decode(line)
            micros = micros_from_at(raw.at)
        except msgspec.DecodeError as exc:
            kind = kind_of(line)
            if kind == CHAT:  # chat takes no part in the sessions
                continue
            if kind in ROOM_TYPES:
                _room_event(number, line, now, report, outcome)
                continue
            outcome.invalid += 1
            report(number, str(exc))
            continue
        except InvalidTime as exc:
            outcome.invalid += 1
            report(number, f"{exc} - at `$.at`")
            continue
        stamp = micros * 2 + (raw.type == JOINED)  # as `engine.stamp` makes it
        if stamp > last_stamp:
            outcome.future += 1
            continue
        stamps.append(stamp)
        events.append(raw)
    chunk.add(np.array(stamps, np.int64), events)
    outcome.events += len(events)


def halves(file: IO[bytes], ahead: list[bytes]) -> tuple[Iterator[bytes], Iterator[bytes]]:
    """The lines of `file` from where it has been read to, behind those `ahead`, cut in two
    at a line's end; each half is read by position, so that two processes can read at once."""
    fd = file.fileno()
    start, end = file.tell(), os.fstat(fd).st_size
    cut = start + (end - start) // 2
    if start < cut:
        tail = os.pread(fd, _READ, cut - 1)
        while tail and b"\n" not in tail and cut < end:
            cut += len(tail)
            tail = os.pread(fd, _READ, cut - 1)
        newline = tail.find(b"\n")
        cut = end if newline < 0 else cut + newline
    return itertools.chain(ahead, _between(fd, start, cut)), _between(fd, cut, end)


def _between(fd: int, start: int, end: int) -> Iterator[bytes]:
    """The lines of the file `fd` between two offsets, the first at a line's start."""
    rest = b""
    while start < end:
        data = os.pread(fd, min(_READ, end - start), start)
        if not data:
            break
        start += len(data)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest
