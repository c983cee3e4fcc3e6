"""The batch face of the session engine: SESSION-RULES steps 1-4 over columns of events.

Where the incremental face (`roomlog.domain.engine.Room`) replays one room's events one at a
time, this face runs each step over every room at once, as operations on numpy arrays:
- step 1: one sort by participant, then stamp; a presence opens at a join whose previous event
  (of that participant) is not a join, and closes at the next leave;
- step 2: one sort of the kept presences' boundaries by (room, instant); the changes at one
  instant are summed, and a running sum per room is the occupancy after each change;
- step 3: an *episode* is a run of changes from an empty room to the next empty room. It makes
  a session when it reaches two participants or lasts `solo_start`. Inside it, a fall from two
  or more to one participant splits the session `solo_reset` later when the next change comes
  after that instant (or none comes by `now`). Neither needs the machine's state: the
  30-second rule only looks at the episode's own start and end, and after a split no timer
  runs until the next fall to one;
- step 4: each kept presence lies inside one episode; it is found in that episode's latest
  session that begins at or before its start, and the few that run past a split are cut
  there, one more session per round.
The result is the same as the incremental face's, which the property tests check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import add, itemgetter
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar

import numpy as np

from roomlog.domain.events import JOINED, ROOM_ENDED, PresenceEvent, RoomEvent
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.sessions import Attendance, MeetingSession, session_ids
from roomlog.domain.steps import (
    Changes,
    Flags,
    Ints,
    Person,
    Presences,
    Sessions,
    Who,
    kept_presences,
    occupancy_changes,
    session_windows,
)

if TYPE_CHECKING:
    from roomlog.domain.engine import Room

# A room-wide event (SESSION-RULES step 1b) as the engines sort it: (at, kind, id, people),
# kind 0 for a room end and 1 for a snapshot. See `roomlog.domain.replay.Wide`.
Wide = tuple[int, int, str, tuple[tuple[str, str | None, str | None], ...]]
RoomWide = Mapping[str, Sequence[Wide]]

__all__ = [
    "Ints",
    "Person",
    "RoomWide",
    "SessionTable",
    "room_wide_of",
    "session_table",
    "sessionize",
    "who_in",
]

T = TypeVar("T")

# Instants, parameters and `now` must stay far from int64's limit once summed (µs: year 9999 is
# 2.5e17); beyond it the incremental face, on Python's unbounded ints, computes the sessions.
SAFE: Final = 1 << 60

_make = tuple.__new__  # builds a NamedTuple from a tuple without its Python-level __new__
_type, _room, _participant, _at = (itemgetter(i) for i in range(1, 5))
_person = itemgetter(3, 5, 6)


def _codes(values: Iterable[str], count: int) -> tuple[Ints, list[str]]:
    """Each value's code (the rank of its first appearance) and the distinct values in order."""
    seen: dict[str, int] = {}
    # `len(seen)` is taken just before each `setdefault`: a new value gets the next code.
    codes = np.fromiter(map(seen.setdefault, values, map(len, repeat(seen))), np.int64, count)
    return codes, list(seen)


class SessionTable(NamedTuple):
    """Sessions as columns, newest first (Daily's order: latest start, then room name, both
    descending). The records of session `i` are rows `bounds[i]:bounds[i + 1]` of the record
    columns, by join time, then participant id."""

    ids: list[str]
    rooms: list[str]
    start: Ints
    end: Ints  # `now` while ongoing
    ongoing: Flags
    most: Ints  # max_participants
    bounds: Ints
    join: Ints
    leave: Ints  # `now` while present
    present: Flags  # still present in an ongoing session: no leave yet
    event: Ints  # the join that opened the presence, for `who`
    who: Who

    @classmethod
    def of(cls, sessions: Sequence[MeetingSession], now: int) -> SessionTable:
        """The table of `sessions` (in Daily's order) as they stand at `now`."""
        records = [r for s in sessions for r in s.participants]
        return cls(
            [s.id for s in sessions],
            [s.room for s in sessions],
            np.array([s.start for s in sessions], np.int64),
            np.array([now if s.end is None else s.end for s in sessions], np.int64),
            np.array([s.end is None for s in sessions], np.bool_),
            np.array([s.max_participants for s in sessions], np.int64),
            np.cumsum([0] + [len(s.participants) for s in sessions], dtype=np.int64),
            np.array([r.join for r in records], np.int64),
            np.array([now if r.leave is None else r.leave for r in records], np.int64),
            np.array([r.leave is None for r in records], np.bool_),
            np.arange(len(records), dtype=np.int64),
            lambda positions: [records[i][:3] for i in positions],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def per_record(
        self, build: Callable[[list[Person], Ints], list[T]], first: int, last: int
    ) -> tuple[T, ...]:
        """One item per record of sessions `first` to `last` (excluded), in record order.

        `build(people, rows)` makes them for the given rows of the record columns, which
        come in the order of their events, so that memory is read in order.
        """
        lo, hi = int(self.bounds[first]), int(self.bounds[last])
        rows = np.argsort(self.event[lo:hi], kind="stable") + lo
        built = build(self.who(self.event[rows].tolist()), rows)
        back = np.empty(len(rows), np.int64)
        back[rows - lo] = np.arange(len(rows))
        return _gather(built, back.tolist())

    def meetings(self) -> list[MeetingSession]:
        """The sessions as `MeetingSession`s with their `Attendance` records."""

        def attendance(people: list[Person], rows: Ints) -> list[Attendance]:
            leaves: list[int | None] = list(self.leave[rows].tolist())
            for i in np.flatnonzero(self.present[rows]).tolist():
                leaves[i] = None
            moments = zip(self.join[rows].tolist(), leaves, strict=True)
            return list(map(_make, repeat(Attendance), map(add, people, moments)))

        records = self.per_record(attendance, 0, len(self))
        ends: list[int | None] = list(self.end.tolist())
        for i in np.flatnonzero(self.ongoing).tolist():
            ends[i] = None
        groups = map(
            records.__getitem__, map(slice, self.bounds[:-1].tolist(), self.bounds[1:].tolist())
        )
        return list(
            map(
                _make,
                repeat(MeetingSession),
                zip(
                    self.ids,
                    self.rooms,
                    self.start.tolist(),
                    ends,
                    self.most.tolist(),
                    groups,
                    strict=True,
                ),
            )
        )


def room_wide_of(events: Iterable[RoomEvent]) -> dict[str, list[Wide]]:
    """Room ends and snapshots per room, each once, in the engines' form and order."""
    found: defaultdict[str, dict[tuple[int, str], Wide]] = defaultdict(dict)
    for e in events:
        found[e.room][(e.at, e.id)] = (e.at, 0 if e.type == ROOM_ENDED else 1, e.id, e.people)
    return {room: sorted(held.values(), key=itemgetter(0, 1, 2)) for room, held in found.items()}


def sessionize(
    events: Sequence[PresenceEvent],
    now: int,
    rules: Rules = DEFAULT_RULES,
    tenant: str = "default",
    room_events: Iterable[RoomEvent] = (),
) -> list[MeetingSession]:
    """Every room's sessions at `now` from a set of events (room ends and snapshots among
    them), newest first."""
    count = len(events)
    at = np.fromiter(map(_at, events), np.int64, count)
    joined = np.fromiter(map(JOINED.__eq__, map(_type, events)), np.bool_, count)

    def who(positions: list[int]) -> list[Person]:
        return list(map(_person, map(events.__getitem__, positions)))

    table = session_table(
        at * 2 + joined,
        map(_room, events),
        map(_participant, events),
        who,
        now,
        rules,
        tenant,
        room_wide_of(room_events),
    )
    return table.meetings()


def who_in(
    participants: Sequence[str], user_ids: Sequence[str | None], user_names: Sequence[str | None]
) -> Who:
    """`Who` over three columns."""

    def who(positions: list[int]) -> list[Person]:
        return list(
            zip(
                map(participants.__getitem__, positions),
                map(user_ids.__getitem__, positions),
                map(user_names.__getitem__, positions),
                strict=True,
            )
        )

    return who


def session_table(
    stamps: Ints,
    rooms: Iterable[str],
    participants: Iterable[str],
    who: Who,
    now: int,
    rules: Rules = DEFAULT_RULES,
    tenant: str = "default",
    room_wide: RoomWide | None = None,
) -> SessionTable:
    """Every room's sessions at `now` from events given as columns: `stamps` as
    `roomlog.domain.engine.stamp` makes them, each event's room and participant id, and
    `who` for the rest; `room_wide` holds each room's room ends and snapshots, sorted."""
    if room_wide:
        stamps, rooms, participants, who = _expanded(
            stamps, list(rooms), list(participants), who, room_wide
        )
    count = len(stamps)
    if max(now, rules.min_presence, rules.solo_start, rules.solo_reset) >= SAFE:
        return _replayed(stamps, list(rooms), who, now, rules, tenant)
    if not count:
        return SessionTable.of([], now)
    room_codes, room_names = _codes(rooms, count)
    pid_codes, _ = _codes(participants, count)
    kept = kept_presences(stamps, room_codes, pid_codes, now, rules, who)
    if not len(kept.start):
        return SessionTable.of([], now)
    changes = occupancy_changes(kept)
    sessions, episode_of = session_windows(changes, now, rules)
    if not len(sessions.start):
        return SessionTable.of([], now)
    return _table(kept, changes, sessions, episode_of, room_names, who, tenant)


def _expanded(
    stamps: Ints, rooms: list[str], participants: list[str], who: Who, room_wide: RoomWide
) -> tuple[Ints, list[str], list[str], Who]:
    """The events of the rooms with room ends or snapshots replaced by the joins and leaves
    of each presence that SESSION-RULES steps 1 and 1b find in them: the same presences,
    which the rest of this face then takes as it takes any room's."""
    from roomlog.domain.replay import by_stamp, walk  # noqa: PLC0415 - only for step 1b

    positions: defaultdict[str, list[int]] = defaultdict(list)
    keep: list[int] = []
    for n, room in enumerate(rooms):
        if room in room_wide:
            positions[room].append(n)
        else:
            keep.append(n)
    new_stamps: list[int] = []
    new_rooms: list[str] = []
    new_people: list[Person] = []
    for room, wides in room_wide.items():
        own = positions.get(room, [])
        events = sorted(
            ((int(stamps[n]), *person) for n, person in zip(own, who(own), strict=True)),
            key=by_stamp,
        )
        for start, end, pid, user_id, user_name in walk({}, events, wides):
            person = (pid, user_id, user_name)
            new_stamps.append(start * 2 + 1)
            new_rooms.append(room)
            new_people.append(person)
            if end is not None:
                new_stamps.append(end * 2)
                new_rooms.append(room)
                new_people.append(person)
    kept = len(keep)

    def expanded_who(chosen: list[int]) -> list[Person]:
        old = iter(who([keep[n] for n in chosen if n < kept]))
        return [next(old) if n < kept else new_people[n - kept] for n in chosen]

    return (
        np.concatenate((stamps[keep], np.asarray(new_stamps, np.int64))),
        [rooms[n] for n in keep] + new_rooms,
        [participants[n] for n in keep] + [p[0] for p in new_people],
        expanded_who,
    )


def _replayed(
    stamps: Ints, rooms: list[str], who: Who, now: int, rules: Rules, tenant: str
) -> SessionTable:
    """The replay of the incremental face, for what is beyond `SAFE`."""
    # The incremental face is imported here, for this rare case only: `roomlog sessionize`
    # pays for each import at every start.
    from roomlog.domain.engine import Room, newest_first  # noqa: PLC0415

    by_room: dict[str, Room] = {}
    for stamp, room, person in zip(
        stamps.tolist(), rooms, who(list(range(len(stamps)))), strict=True
    ):
        state = by_room.get(room)
        if state is None:
            state = by_room[room] = Room(room, rules, tenant)
        state.extend(((stamp, *person),))
    return SessionTable.of(
        newest_first(s for state in by_room.values() for s in state.sessions(now)), now
    )


def _table(
    kept: Presences,
    changes: Changes,
    sessions: Sessions,
    episode_of: Ints,
    room_names: list[str],
    who: Who,
    tenant: str,
) -> SessionTable:
    """SESSION-RULES step 4, and the sessions in Daily's order."""
    count = len(sessions.start)
    rank = np.empty(len(room_names), np.int64)
    rank[sorted(range(len(room_names)), key=room_names.__getitem__)] = np.arange(len(room_names))
    newest = np.lexsort((rank[sessions.room], sessions.start))[::-1]
    position = np.empty(count, np.int64)  # each session's place in that order
    position[newest] = np.arange(count)
    # A presence starts inside its episode's latest session that begins at or before its
    # start (sessions are in change order: `first_change` is sorted).
    latest = np.full(len(changes.at) + 1, -1, np.int64)
    np.maximum.at(latest, sessions.first_change, np.arange(count))
    at = np.maximum.accumulate(latest)[changes.of_start]
    found = np.maximum(at, 0)
    inside = (at >= 0) & (sessions.episode[found] == episode_of[changes.of_start])
    nxt = np.minimum(at + 1, max(count - 1, 0))
    spans = (
        inside
        & (at + 1 < count)
        & (sessions.episode[nxt] == sessions.episode[found])
        & (sessions.start[nxt] < kept.end)
    )
    whole = np.flatnonzero(inside & ~spans & (kept.start < kept.end))
    session = at[whole]
    join = kept.start[whole]
    leave = kept.end[whole]
    event = kept.event[whole]
    # Open at `now`, and in a session that goes on (not one that a split ends at `now`).
    present = kept.open[whole] & sessions.ongoing[session]
    cut = np.flatnonzero(spans)
    if len(cut):
        pieces = _pieces(kept, sessions, cut, at)
        session = np.concatenate((session, pieces[0]))
        join = np.concatenate((join, pieces[1]))
        leave = np.concatenate((leave, pieces[2]))
        event = np.concatenate((event, pieces[3]))
        present = np.concatenate((present, pieces[4]))
    session = position[session]
    order = _by_session_then_join(session, join, event, who)
    rooms = list(map(room_names.__getitem__, sessions.room[newest].tolist()))
    start = sessions.start[newest]
    return SessionTable(
        session_ids(tenant, rooms, start.tolist()),
        rooms,
        start,
        sessions.end[newest],
        sessions.ongoing[newest],
        sessions.most[newest],
        np.concatenate(([0], np.cumsum(np.bincount(session, minlength=count)))),
        join[order],
        leave[order],
        present[order],
        event[order],
        who,
    )


def _pieces(
    kept: Presences, sessions: Sessions, cut: Ints, at: Ints
) -> tuple[Ints, Ints, Ints, Ints, Flags]:
    """The records of presences that run past a split: one per session they overlap.

    Round `n` cuts every such presence's piece in the `n`-th session from its first.
    """
    parts: list[tuple[Ints, Ints, Ints, Ints, Flags]] = []
    count = len(sessions.start)
    episode = sessions.episode[at[cut]]
    session = at[cut]
    while len(cut):
        start, stop = kept.start[cut], kept.end[cut]
        lo = np.maximum(start, sessions.start[session])
        hi = np.minimum(stop, sessions.end[session])
        piece = np.flatnonzero(hi > lo)
        parts.append(
            (
                session[piece],
                lo[piece],
                hi[piece],
                kept.event[cut[piece]],
                kept.open[cut[piece]] & sessions.ongoing[session[piece]],
            )
        )
        session = session + 1
        nxt = np.minimum(session, count - 1)
        going = np.flatnonzero(
            (session < count) & (sessions.episode[nxt] == episode) & (sessions.start[nxt] < stop)
        )
        cut, session, episode = cut[going], session[going], episode[going]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
    )


def _by_session_then_join(session: Ints, join: Ints, event: Ints, who: Who) -> Ints:
    """The records' order: by session, then join time, then participant id (as `Room` sorts)."""
    order = np.lexsort((join, session))
    s, j = session[order], join[order]
    tied = np.flatnonzero((s[1:] == s[:-1]) & (j[1:] == j[:-1]))
    if not len(tied):
        return order
    fixed = order.tolist()
    runs: list[tuple[int, int]] = []
    for i in tied.tolist():
        if runs and i == runs[-1][1] - 1:
            runs[-1] = (runs[-1][0], i + 2)
        else:
            runs.append((i, i + 2))
    for lo, hi in runs:
        mine = fixed[lo:hi]
        people = who(event[mine].tolist())
        by_pid = sorted(range(len(mine)), key=lambda i: people[i][0])
        fixed[lo:hi] = [mine[i] for i in by_pid]
    return np.array(fixed, np.int64)


def _gather(items: list[T], positions: list[int]) -> tuple[T, ...]:
    """`tuple(items[i] for i in positions)`, in one call."""
    if len(positions) < 2:
        return tuple(items[i] for i in positions)
    picked: tuple[T, ...] = itemgetter(*positions)(items)
    return picked
