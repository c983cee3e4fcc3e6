"""One room's update, as pure computation: stored state + new events + `now` → what to write.

The row of a room holds the engine's incremental state (a checkpoint plus the events since
it), the fingerprints of the sessions it still may change ("live" sessions), and how many
sessions it has settled for good. Once a room holds more than `INLINE_AT_MOST` events since
its checkpoint, they are kept apart, in chunks (`schema.room_held`): a write stores the
events it added, not all the room holds.
An update feeds the new events to the engine, settles the part of the past that no event
within the late window can change any more, reads the sessions at `now`, and returns only
the sessions that changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from roomlog.domain.engine import Checkpoint, Room, Stamped, Wide
from roomlog.domain.events import JOINED, LEFT, PresenceEvent
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import Attendance, MeetingSession

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

# A rebuild settles the room every this many events, keeping a checkpoint each time.
REBUILD_STEP: Final = 4096
# Settle once the checkpoint lags the late window by this many windows, so that most updates
# replay only the recent events instead of settling every time, and the room holds at least
# `SETTLE_AT_LEAST` events since its checkpoint (or more than `REBUILD_STEP`, whatever their
# times). A settle costs a replay and a checkpoint row; one that retires a handful of events
# is not worth them, since a read replays only from its last restart point anyway. Without
# that floor, a history posted faster than it happened (an import, a relay catching up)
# settles every room at every write: its events are all past the window.
SETTLE_LAG: Final = 2
SETTLE_AT_LEAST: Final = 64
# A room holding at most this many events since its checkpoint keeps them inline in its
# state; one holding more keeps them in chunks (`schema.room_held`), each write appending
# what it added. Re-encoding a few events costs less than a row per write (PostgreSQL's
# above all); re-encoding hundreds costs far more (docs/PERFORMANCE.md).
INLINE_AT_MOST: Final = 128


@dataclass(slots=True)
class RoomState:
    """A room's engine state with what the service derived from it, as its row holds them:
    the fingerprints of the sessions it may still change (`live`) and how many it settled."""

    room: Room
    live: dict[str, str]
    settled: int
    # Whether the room's held events are stored as chunks (`schema.room_held`); False while
    # they are inline in the state (few of them, a new room, or a state written before
    # chunks), which has no chunks to drop then.
    chunked: bool = False


@dataclass(slots=True)
class RoomWrite:
    """What one update of a room writes, and the state it leaves (`after`)."""

    after: RoomState
    state: bytes
    due_at: int | None
    occupancy: int
    presence: bytes
    session_count: int
    upserts: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    # True when the room was rebuilt from its event log: its stored sessions are replaced, all
    # of them or (`replace_from`) those that ended at or after that instant or are ongoing.
    replace_all: bool = False
    replace_from: int | None = None
    # The room's held events to store: the update's new ones, appended as a chunk, or (with
    # `held_replaced`, after a settle or a rebuild) all of them, replacing the chunks.
    held: list[Stamped] = field(default_factory=list)
    held_replaced: bool = False
    # Checkpoints the update settled the room at: (at, checkpoint, sessions settled before it).
    # A late event re-derives the room from the newest one at or before it.
    checkpoints: list[tuple[int, bytes, int]] = field(default_factory=list)
    # The joins and leaves that new room ends and snapshots made, as the room stood: what
    # webhooks announce of them.
    derived: list[PresenceEvent] = field(default_factory=list)


def encode_participants(session: MeetingSession) -> bytes:
    return _encode(session.participants)  # each record, a named tuple, as an array


def decode_participants(blob: bytes) -> tuple[Attendance, ...]:
    return tuple(Attendance(*a) for a in _decode(blob))


def decode_presence(blob: bytes) -> tuple[str | None, list[list[Any]]]:
    """(ongoing session id or None, [[participant_id, join, user_id, user_name], ...])."""
    data = _decode(blob)
    return data["session"], data["people"]


def session_row(project_id: int, session: MeetingSession) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "id": session.id,
        "room": session.room,
        "start_at": session.start,
        "end_at": session.end,
        "max_participants": session.max_participants,
        "participant_count": len({a.participant_id for a in session.participants}),
        "participants": encode_participants(session),
        "attended": attended(session.participants),
    }


def attended(records: tuple[Attendance, ...]) -> int:
    """The participant time (µs) of the closed records: what no passing of time changes."""
    return sum(r.leave - r.join for r in records if r.leave is not None)


def _fingerprint(session: MeetingSession) -> str:
    body = _encode([session.start, session.end, session.max_participants, session.participants])
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def encode_held(events: list[Stamped]) -> bytes:
    """A chunk of a room's held events (`schema.room_held`)."""
    return _encode(events)


def load_room(
    name: str, blob: bytes, rules: Rules, tenant: str, chunks: Sequence[bytes] = ()
) -> RoomState:
    """The state a room row holds with its held events' `chunks` (an empty `blob`: a room
    with no events yet)."""
    if not blob:
        return RoomState(Room(name, rules, tenant), {}, 0)
    data = _decode(blob)
    room = data["room"]
    if chunks:
        room["events"] = [*room["events"], *(e for c in chunks for e in _decode(c))]
    chunked = bool(data.get("chunked", False))
    return RoomState(Room.from_dict(room, rules, tenant), data["live"], data["settled"], chunked)


def _derived(room: Room, new: list[Wide], made: Any) -> list[PresenceEvent]:
    """Feed the room ends and snapshots `new` to `room`, one by one; the joins and leaves each
    made as the room stood just before it (ids from `made(event id, participant, kind)`)."""
    found: list[PresenceEvent] = []
    for event in sorted(new):
        at, kind, eid, people = event
        present = {p[0]: p for p in room.present(at)}
        listed = {} if kind == 0 else {p[0]: p for p in people}
        for pid in sorted(set(present) | set(listed)):
            if (pid in present) == (pid in listed):
                continue
            if pid in present:
                _, _, user_id, user_name = present[pid]
                found.append(
                    PresenceEvent(
                        made(eid, pid, LEFT), LEFT, room.name, pid, at, user_id, user_name
                    )
                )
            else:
                _, user_id, user_name = listed[pid]
                found.append(
                    PresenceEvent(
                        made(eid, pid, JOINED), JOINED, room.name, pid, at, user_id, user_name
                    )
                )
        room.extend_wide((event,))
    return found


def advance(
    project_id: int,
    state: RoomState,
    events: list[Stamped],
    now: int,
    late_window: int,
    room_wide: list[Wide] | None = None,
    made: Any = None,
) -> RoomWrite:
    """Feed `events` and the room ends and snapshots `room_wide` to the room of `state` and
    read it at `now`. The room's held events are stored in chunks beside its state
    (`RoomWrite.held`) once there are more than `INLINE_AT_MOST`, else inline in it.

    The room is changed in place. Raises `LateEvent` from the engine, after which the room
    is to be rebuilt, not reused."""
    room, settled = state.room, state.settled
    room.check_late(events, room_wide or ())  # the earliest late one of both kinds
    room.extend(events)
    derived = _derived(room, room_wide, made) if room_wide else []
    upserts: list[dict[str, Any]] = []
    live = dict(state.live)
    until = _settle_until(room, now, late_window)
    checkpoint = room.checkpoint.at
    marks: list[tuple[int, bytes, int]] = []
    held = room.pending_events
    lags = until > (checkpoint or 0) + late_window * (SETTLE_LAG - 1)
    due = (lags and held >= SETTLE_AT_LEAST) or held > REBUILD_STEP
    earliest = room.earliest
    replaced = False
    # With no event held from before `until`, settling would only move the checkpoint up to
    # it, at the cost of a replay and a checkpoint row: a new room with fresh events skips it.
    if due and earliest is not None and earliest < until:
        replaced = True
        for session in room.settle(until):
            if live.pop(session.id, None) != _fingerprint(session):
                upserts.append(session_row(project_id, session))
            settled += 1
        marks = _marked(room, checkpoint, settled)
    current = room.sessions(now)
    fresh: dict[str, str] = {}
    for session in current:
        mark = _fingerprint(session)
        fresh[session.id] = mark
        if live.get(session.id) != mark:
            upserts.append(session_row(project_id, session))
    deletes = [sid for sid in live if sid not in fresh]
    added = None if replaced else events
    written = _finish(
        room, fresh, settled, current, now, upserts, deletes, False, added, state.chunked
    )
    written.derived = derived
    written.checkpoints = marks
    return written


def _marked(room: Room, before: int | None, settled: int) -> list[tuple[int, bytes, int]]:
    """The room's checkpoint as a row to keep, if settling moved it past `before`."""
    at = room.checkpoint.at
    if at is None or (before is not None and at <= before):
        return []
    return [(at, _encode(room.checkpoint.to_dict()), settled)]


def load_checkpoint(blob: bytes) -> Checkpoint:
    return Checkpoint.from_dict(_decode(blob))


def _settle_until(room: Room, now: int, late_window: int) -> int:
    """How far `room` may settle: the late window before its newest event (or `now`).

    Lateness counts from the room's newest event, not from `now`: a history imported or
    relayed after the fact arrives with its own delays, and settling it up to `now` would
    make each of its late deliveries rebuild the room.
    """
    latest = room.latest
    return (now if latest is None else min(now, latest)) - late_window


def rebuilt(
    project_id: int,
    name: str,
    rules: Rules,
    tenant: str,
    events: list[Stamped],
    now: int,
    late_window: int,
    room_wide: list[Wide] | None = None,
    start: tuple[Checkpoint, int] | None = None,
) -> RoomWrite:
    """A room computed afresh from its event log: the whole of it, or (`start`, a checkpoint
    and the sessions settled before it) the events since that checkpoint. The stored
    sessions it may have changed are replaced."""
    checkpoint, settled_before = start if start is not None else (None, 0)
    known = [events[-1][0] >> 1] if events else []
    known += [room_wide[-1][0]] if room_wide else []
    latest = max(known) if known else (checkpoint.at if checkpoint is not None else None)
    until = (now if latest is None else min(now, latest)) - late_window
    # Settled in steps, a checkpoint kept at each: a later late event re-derives the room
    # from the one just before it, not from where this one started.
    fed = Room(name, rules, tenant, checkpoint, room_wide=room_wide or ())
    settled: list[MeetingSession] = []
    marks: list[tuple[int, bytes, int]] = []
    count = settled_before
    for i in range(0, len(events), REBUILD_STEP):
        chunk = events[i : i + REBUILD_STEP]
        fed.extend(chunk)
        before = fed.checkpoint.at
        found = fed.settle(min(chunk[-1][0] >> 1, until))
        settled += found
        count += len(found)
        marks += _marked(fed, before, count)
    if room_wide and not events:
        before = fed.checkpoint.at
        settled += fed.settle(until)
        count = settled_before + len(settled)
        marks += _marked(fed, before, count)
    room = fed
    current = room.sessions(now)
    upserts = [session_row(project_id, s) for s in settled + current]
    fresh = {s.id: _fingerprint(s) for s in current}
    written = _finish(room, fresh, count, current, now, upserts, [], True, None, True)
    written.replace_from = None if checkpoint is None else checkpoint.at
    written.checkpoints = marks
    return written


def _finish(
    room: Room,
    live: dict[str, str],
    settled: int,
    current: list[MeetingSession],
    now: int,
    upserts: list[dict[str, Any]],
    deletes: list[str],
    replace_all: bool,
    added: list[Stamped] | None,
    had_chunks: bool,
) -> RoomWrite:
    """The write of `room`: with more than `INLINE_AT_MOST` events held, its state without
    them, and the events `added` to store apart as a chunk (or all of them, replacing its
    chunks, if it had none or `added` is None: a settle or a rebuild changed what it holds);
    else its state with them all inline, and its chunks dropped if it `had_chunks`."""
    people = room.present(now)
    ongoing = current[-1].id if current and current[-1].end is None else None
    apart = room.pending_events > INLINE_AT_MOST
    # What a write of a room kept in chunks appends; None: all it holds, in place of them.
    chunk = added if had_chunks else None
    data = {"room": room.to_dict(events=not apart), "live": live, "settled": settled}
    if apart:
        data["chunked"] = 1
    return RoomWrite(
        after=RoomState(room, live, settled, apart),
        state=_encode(data),
        due_at=room.due,
        occupancy=len(people),
        presence=_encode({"session": ongoing, "people": [list(p) for p in people]}),
        session_count=settled + len(live),
        upserts=upserts,
        deletes=deletes,
        replace_all=replace_all,
        held=(room.held() if chunk is None else chunk) if apart else [],
        held_replaced=chunk is None if apart else had_chunks,
    )
