"""The incremental face over sorted runs, for a room too big for the memory budget: its
events cut into runs that fit, each sorted and spilled, merged back in time order into one
`Room` that settles as the stream moves on. Memory holds a run, then the room's open
presences and latest events, not its closed past."""

from __future__ import annotations

import struct
import tempfile
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import IO, Final

import msgspec

from roomlog.domain.batch import RoomWide
from roomlog.domain.engine import Room, Stamped, newest_first
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import MeetingSession
from roomlog.offline.reading import Chunk

# Events a room gathers before it settles; small enough to bound memory, large enough that
# settling costs little per event.
SETTLE_EVERY: Final = 64
_BLOCK: Final = 16_384

# (stamp, room, participant_id, user_id, user_name); see `roomlog.domain.engine.stamp`.
Row = tuple[int, str, str, str | None, str | None]

_by_stamp = itemgetter(0)
_length = struct.Struct("<I")
_row_decoder: Final = msgspec.msgpack.Decoder(list[Row])


def incremental(
    chunks: Iterable[Chunk],
    limit: int,
    now: int,
    rules: Rules,
    tenant: str,
    room_wide: RoomWide | None = None,
) -> list[MeetingSession]:
    """The sessions at `now` of the events of `chunks`, each chunk sorted into a run; the
    merge holds one block of each run, a small part of the `limit` events memory may hold."""
    block = max(SETTLE_EVERY, min(_BLOCK, limit // 64))
    with tempfile.TemporaryFile(prefix="roomlog-runs-") as spool:
        runs = [_spill(_sorted_rows(chunk), spool, block) for chunk in chunks if len(chunk)]
        return _run_rooms(_merge(runs), now, rules, tenant, room_wide or {})


def _sorted_rows(chunk: Chunk) -> list[Row]:
    rows = list(
        zip(
            chunk.stamp_column().tolist(),
            chunk.rooms,
            chunk.participants,
            chunk.user_ids,
            chunk.user_names,
            strict=True,
        )
    )
    rows.sort(key=_by_stamp)
    return rows


def _spill(rows: list[Row], spool: IO[bytes], block: int) -> Iterator[list[Row]]:
    """Write sorted `rows` to `spool` and return a reader of them, `block` rows at a time."""
    start = spool.seek(0, 2)
    for i in range(0, len(rows), block):
        data = msgspec.msgpack.encode(rows[i : i + block])
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


def _run_rooms(
    blocks: Iterable[list[Row]], now: int, rules: Rules, tenant: str, room_wide: RoomWide
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
                state = rooms[name] = Room(name, rules, tenant, room_wide=room_wide.get(name, ()))
            state.extend(events)
            if state.pending_events >= SETTLE_EVERY:
                sessions += state.settle(watermark)
    for state in rooms.values():
        sessions += state.sessions(now)
    return newest_first(sessions)
