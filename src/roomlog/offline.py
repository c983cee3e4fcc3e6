"""`roomlog sessionize`: NDJSON events in, meeting sessions out, in bounded memory.

Events may come in any order. Up to `chunk_events` of them are sorted in memory; a longer
input is cut into sorted runs spilled to temporary files and merged. The merged stream, in time
order, feeds one incremental `Room` per room, which settles as the stream moves on, so memory
holds the rooms, their open presences and their latest events, not the closed past.
"""

from __future__ import annotations

import struct
import tempfile
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import IO, Final

import msgspec

from roomlog.domain.engine import Room, Stamped, newest_first
from roomlog.domain.events import JOINED, LATEST_AT, MICROS, InvalidTime, micros_from_at
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.sessions import MeetingSession
from roomlog.ingest.native import NativeEvent

CHUNK_EVENTS: Final = 500_000
# Events a room gathers before it settles; small enough to bound memory, large enough that
# settling costs little per event.
SETTLE_EVERY: Final = 512
_BLOCK: Final = 16_384

# (stamp, room, participant_id, user_id, user_name); see `roomlog.domain.engine.stamp`.
Row = tuple[int, str, str, str | None, str | None]
Report = Callable[[int, str], None]

_by_stamp = itemgetter(0)
_length = struct.Struct("<I")
_row_decoder: Final = msgspec.msgpack.Decoder(list[tuple[int, str, str, str | None, str | None]])
_event_decoder: Final = msgspec.json.Decoder(NativeEvent)


@dataclass(slots=True)
class Outcome:
    """What a run of `sessionize_lines` found."""

    sessions: list[MeetingSession]
    events: int = 0
    invalid: int = 0
    future: int = 0


def _rows(lines: Iterable[bytes], now: int, report: Report, outcome: Outcome) -> Iterator[Row]:
    """Parse and check each line; invalid lines go to `report`, events after `now` are counted."""
    decode = _event_decoder.decode
    limit = now * 2 + 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = decode(line)
            at = raw.at
            # The common case, whole unix seconds, without a function call.
            if type(at) is int and 0 <= at <= LATEST_AT:
                micros = at * MICROS
            else:
                micros = micros_from_at(at)
        except msgspec.DecodeError as exc:
            outcome.invalid += 1
            report(number, str(exc))
            continue
        except InvalidTime as exc:
            outcome.invalid += 1
            report(number, f"{exc} - at `$.at`")
            continue
        stamp = micros * 2 + (raw.type == JOINED)
        if stamp > limit:
            outcome.future += 1
            continue
        outcome.events += 1
        yield (stamp, raw.room, raw.participant_id, raw.user_id, raw.user_name)


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
    rows = _rows(lines, now, report, outcome)
    with tempfile.TemporaryFile(prefix="roomlog-") as spool:
        runs: list[Iterator[list[Row]]] = []
        chunk: list[Row] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= chunk_events:
                chunk.sort(key=_by_stamp)
                runs.append(_spill(chunk, spool))
                chunk = []
        chunk.sort(key=_by_stamp)
        if runs:
            if chunk:
                runs.append(_spill(chunk, spool))
            blocks: Iterable[list[Row]] = _merge(runs)
        else:
            blocks = (chunk[i : i + _BLOCK] for i in range(0, len(chunk), _BLOCK))
        outcome.sessions = _run_rooms(blocks, now, rules, tenant)
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
