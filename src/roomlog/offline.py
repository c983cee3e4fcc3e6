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
from operator import itemgetter
from typing import IO, Final

import msgspec
import numpy as np

from roomlog.domain.batch import sessionize_columns, who_in
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

# (stamp, room, participant_id, user_id, user_name); see `roomlog.domain.engine.stamp`.
Row = tuple[int, str, str, str | None, str | None]
Report = Callable[[int, str], None]

_by_stamp = itemgetter(0)
_length = struct.Struct("<I")
_row_decoder: Final = msgspec.msgpack.Decoder(list[Row])
_event_decoder: Final = msgspec.json.Decoder(NativeEvent)


@dataclass(slots=True)
class Outcome:
    """What a run of `sessionize_lines` found."""

    sessions: list[MeetingSession]
    events: int = 0
    invalid: int = 0
    future: int = 0


class _Chunk:
    """Events as columns, in the order they were read."""

    __slots__ = ("participants", "rooms", "stamps", "user_ids", "user_names")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.rooms: list[str] = []
        self.participants: list[str] = []
        self.user_ids: list[str | None] = []
        self.user_names: list[str | None] = []

    def __len__(self) -> int:
        return len(self.stamps)

    def sessions(self, now: int, rules: Rules, tenant: str) -> list[MeetingSession]:
        return sessionize_columns(
            np.array(self.stamps, np.int64),
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
                self.stamps,
                self.rooms,
                self.participants,
                self.user_ids,
                self.user_names,
                strict=True,
            )
        )
        rows.sort(key=_by_stamp)
        return rows


def _read_chunk(
    numbered: Iterator[tuple[int, bytes]],
    limit: int,
    now: int,
    report: Report,
    outcome: Outcome,
) -> tuple[_Chunk, bool]:
    """Parse and check up to `limit` events; True once the input is used up.

    Invalid lines go to `report`; events stamped after `now` are counted and left out.
    """
    decode = _event_decoder.decode
    last_stamp = now * 2 + 1
    chunk = _Chunk()
    stamps, rooms, participants = chunk.stamps, chunk.rooms, chunk.participants
    user_ids, user_names = chunk.user_ids, chunk.user_names
    taken = 0
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            raw = decode(line)
            at = raw.at
            # The common cases, unix seconds in range, without a function call.
            if type(at) is int and 0 <= at <= LATEST_AT:
                micros = at * MICROS
            elif type(at) is float and 0 <= at <= LATEST_AT:
                micros = round(at * MICROS)
            else:
                micros = micros_from_at(at)
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
        rooms.append(raw.room)
        participants.append(raw.participant_id)
        user_ids.append(raw.user_id)
        user_names.append(raw.user_name)
        taken += 1
        if taken == limit:
            break
    outcome.events += taken
    return chunk, taken < limit


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
    outcome = Outcome(sessions=[])
    numbered: Iterator[tuple[int, bytes]] = enumerate(lines, start=1)
    first, done = _read_chunk(numbered, chunk_events, now, report, outcome)
    if not done:
        # A full chunk: look one line ahead before paying for sorted runs.
        ahead = next(numbered, None)
        done = ahead is None
        if ahead is not None:
            numbered = itertools.chain((ahead,), numbered)
    if done:
        outcome.sessions = first.sessions(now, rules, tenant)
        return outcome
    with tempfile.TemporaryFile(prefix="roomlog-") as spool:
        runs = [_spill(first.sorted_rows(), spool)]
        del first
        while not done:
            chunk, done = _read_chunk(numbered, chunk_events, now, report, outcome)
            if len(chunk):
                runs.append(_spill(chunk.sorted_rows(), spool))
        outcome.sessions = _run_rooms(_merge(runs), now, rules, tenant)
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
