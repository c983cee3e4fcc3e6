"""`roomlog sessionize`: NDJSON events in, meeting sessions out, in bounded memory.

Events may come in any order. An input of up to `chunk_events` events is read into columns in
memory and run through the batch engine. A longer one is cut into sorted runs spilled to
temporary files and merged. The merged stream, in time order, feeds one incremental `Room`
per room, which settles as the stream moves on, so memory holds the rooms, their open
presences and their latest events, not the closed past.
"""

from __future__ import annotations

import itertools
import struct
import tempfile
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import IO, Final

import msgspec
import numpy as np

from roomlog.domain.batch import Ints, SessionTable, session_table, who_in
from roomlog.domain.engine import Room, Stamped, newest_first
from roomlog.domain.events import JOINED, LATEST_AT, MICROS, InvalidTime, micros_from_at
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.sessions import MeetingSession
from roomlog.ingest.native import NativeEvent, is_chat

# Events held in memory at once (about 400 MB at 1M); a longer input spills sorted runs.
CHUNK_EVENTS: Final = 1_000_000
# Events a room gathers before it settles; small enough to bound memory, large enough that
# settling costs little per event.
SETTLE_EVERY: Final = 64
_BLOCK: Final = 16_384
# Lines decoded in one call; a block with an invalid line is read again line by line.
_LINES: Final = 16_384
_NUMBERS: Final = frozenset((int, float))

# (stamp, room, participant_id, user_id, user_name); see `roomlog.domain.engine.stamp`.
Row = tuple[int, str, str, str | None, str | None]
Report = Callable[[int, str], None]

_by_stamp = itemgetter(0)
_type, _room, _participant, _at, _user_id, _user_name = (
    attrgetter(name) for name in ("type", "room", "participant_id", "at", "user_id", "user_name")
)
_length = struct.Struct("<I")
_row_decoder: Final = msgspec.msgpack.Decoder(list[Row])
_event_decoder: Final = msgspec.json.Decoder(NativeEvent)


@dataclass(slots=True)
class Outcome:
    """What a run of `sessionize_lines` found."""

    table: SessionTable
    events: int = 0
    invalid: int = 0
    future: int = 0

    @property
    def sessions(self) -> list[MeetingSession]:
        return self.table.meetings()


class _Chunk:
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

    def table(self, now: int, rules: Rules, tenant: str) -> SessionTable:
        return session_table(
            np.concatenate(self.stamps) if self.stamps else np.empty(0, np.int64),
            self.rooms,
            self.participants,
            who_in(self.participants, self.user_ids, self.user_names),
            now,
            rules,
            tenant,
        )

    def sorted_rows(self) -> list[Row]:
        rows = list(
            zip(
                np.concatenate(self.stamps).tolist(),
                self.rooms,
                self.participants,
                self.user_ids,
                self.user_names,
                strict=True,
            )
        )
        rows.sort(key=_by_stamp)
        return rows


class _Lines:
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


def _read_chunk(
    lines: _Lines,
    limit: int,
    now: int,
    report: Report,
    outcome: Outcome,
) -> tuple[_Chunk, bool]:
    """Parse and check up to `limit` events; True once the input is used up.

    Invalid lines go to `report`; events stamped after `now` are counted and left out.
    """
    chunk = _Chunk()
    while len(chunk) < limit:
        first, block = lines.block(min(_LINES, limit - len(chunk)))
        if not block:
            return chunk, True
        if not _read_block(block, chunk, now, outcome):
            _read_lines(first, block, chunk, now, report, outcome)
    return chunk, False


def _read_block(block: list[bytes], chunk: _Chunk, now: int, outcome: Outcome) -> bool:
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


def _read_lines(
    first: int, block: list[bytes], chunk: _Chunk, now: int, report: Report, outcome: Outcome
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
            if is_chat(line):  # chat takes no part in the sessions
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


def _spill(rows: list[Row], spool: IO[bytes]) -> Iterator[list[Row]]:
    """Write sorted `rows` to `spool` and return a reader of them, block by block."""
    start = spool.tell()
    for i in range(0, len(rows), _BLOCK):
        data = msgspec.msgpack.encode(rows[i : i + _BLOCK])
        spool.write(_length.pack(len(data)))
        spool.write(data)
    end = spool.tell()

    def read() -> Iterator[list[Row]]:
        position = start
        while position < end:
            spool.seek(position)
            (size,) = _length.unpack(spool.read(_length.size))
            block = _row_decoder.decode(spool.read(size))
            position += _length.size + size
            yield block

    return read()


def _merge(runs: list[Iterator[list[Row]]]) -> Iterator[list[Row]]:
    """Blocks of rows in time order from sorted runs of blocks.

    Each round emits every row up to the smallest last stamp among the runs' current blocks:
    no row still to come can be earlier, since each run's later blocks start after its
    current one ends.
    """
    heads: list[tuple[list[Row], Iterator[list[Row]]]] = []
    positions: list[int] = []
    for run in runs:
        block = next(run, None)
        if block:
            heads.append((block, run))
            positions.append(0)
    while heads:
        bound = min(block[-1][0] for block, _ in heads)
        out: list[Row] = []
        for i, (block, run) in enumerate(heads):
            stop = bisect_right(block, bound, lo=positions[i], key=_by_stamp)
            out += block[positions[i] : stop]
            positions[i] = stop
            if stop == len(block):
                following = next(run, None)
                if following:
                    heads[i], positions[i] = (following, run), 0
        keep = [i for i, (block, _) in enumerate(heads) if positions[i] < len(block)]
        heads = [heads[i] for i in keep]
        positions = [positions[i] for i in keep]
        out.sort(key=_by_stamp)
        yield out


def sessionize_lines(
    lines: Iterable[bytes],
    now: int,
    report: Report,
    rules: Rules = DEFAULT_RULES,
    tenant: str = "default",
    chunk_events: int = CHUNK_EVENTS,
) -> Outcome:
    """Every room's sessions at `now` from NDJSON `lines`, newest first."""
    outcome = Outcome(SessionTable.of([], now))
    source = _Lines(lines)
    first, done = _read_chunk(source, chunk_events, now, report, outcome)
    # A full chunk: look one line ahead before paying for sorted runs.
    done = done or source.at_end()
    if done:
        outcome.table = first.table(now, rules, tenant)
        return outcome
    with tempfile.TemporaryFile(prefix="roomlog-") as spool:
        runs = [_spill(first.sorted_rows(), spool)]
        del first
        while not done:
            chunk, done = _read_chunk(source, chunk_events, now, report, outcome)
            if len(chunk):
                runs.append(_spill(chunk.sorted_rows(), spool))
        outcome.table = SessionTable.of(_run_rooms(_merge(runs), now, rules, tenant), now)
    return outcome


def _run_rooms(
    blocks: Iterable[list[Row]], now: int, rules: Rules, tenant: str
) -> list[MeetingSession]:
    rooms: dict[str, Room] = {}
    sessions: list[MeetingSession] = []
    for block in blocks:
        if not block:
            continue
        per_room: defaultdict[str, list[Stamped]] = defaultdict(list)
        for stamp, room, pid, user_id, user_name in block:
            per_room[room].append((stamp, pid, user_id, user_name))
        # The stream is in time order: nothing still to come is stamped before this.
        watermark = block[-1][0] >> 1
        for name, events in per_room.items():
            state = rooms.get(name)
            if state is None:
                state = rooms[name] = Room(name, rules, tenant)
            state.extend(events)
            if state.pending_events >= SETTLE_EVERY:
                sessions += state.settle(watermark)
    for state in rooms.values():
        sessions += state.sessions(now)
    return newest_first(sessions)
