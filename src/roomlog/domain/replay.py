"""The replay at the heart of the engine: SESSION-RULES steps 1-4 from a checkpoint.

A replay walks each participant's events into presence intervals (step 1), keeps those of at
least `min_presence`, turns them into occupancy changes (step 2), runs the state machine over
them (step 3), then clips the kept intervals to the sessions (step 4). `roomlog.domain.engine`
explains when a checkpoint may be taken, and keeps one room's state between replays.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from operator import itemgetter
from typing import Any, NamedTuple

from roomlog.domain.events import JOINED, ROOM_ENDED, PresenceEvent, RoomEvent
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import Attendance, MeetingSession, session_id

# One event as the engine sorts it: (stamp, participant_id, user_id, user_name), where
# stamp = at * 2 + (1 for a join, 0 for a leave): sorting by stamp puts a leave before a join
# at the same instant, as SESSION-RULES step 1 asks (a reconnect).
Stamped = tuple[int, str, str | None, str | None]
# Who opened a presence: (start, user_id, user_name).
Opening = tuple[int, str | None, str | None]
# A room-wide event as the engine sorts it: (at, kind, id, people), kind 0 for a room end and 1
# for a snapshot; sorting puts room ends before snapshots at one instant, then by id
# (SESSION-RULES step 1b).
Wide = tuple[int, int, str, tuple[tuple[str, str | None, str | None], ...]]

by_stamp = itemgetter(0)
_attendance = tuple.__new__  # builds an Attendance without its slower Python-level __new__
_by_join = itemgetter(3, 0)  # Attendance: join time, then participant_id


def stamp(event: PresenceEvent) -> Stamped:
    """The engine's form of an event."""
    return (
        event.at * 2 + (event.type == JOINED),
        event.participant_id,
        event.user_id,
        event.user_name,
    )


def wide(event: RoomEvent) -> Wide:
    """The engine's form of a room-wide event."""
    return (event.at, 0 if event.type == ROOM_ENDED else 1, event.id, event.people)


# One participant's presence `[start, end)`, `end` None while open:
# (start, end, participant_id, user_id, user_name). A plain tuple: the engine makes one per
# presence, and a NamedTuple costs several times more to build.
Interval = tuple[int, int | None, str, str | None, str | None]
# Someone in the room now: (participant_id, join, user_id, user_name).
Presence = tuple[str, int, str | None, str | None]


class Phase(IntEnum):
    """The states of SESSION-RULES step 3."""

    IDLE = 0
    PENDING = 1
    ACTIVE = 2


class LateEvent(ValueError):
    """An event stamped before the room's checkpoint: rebuild the room from an earlier one."""

    def __init__(self, at: int, checkpoint: int) -> None:
        super().__init__(f"event at {at} µs is before the room's checkpoint at {checkpoint} µs")
        self.at = at
        self.checkpoint = checkpoint


@dataclass(slots=True)
class Checkpoint:
    """The state of one room just before instant `at` (None: before any event).

    `start` is when the current pending or active episode began, `timer` the instant the
    10-minute reset fires, `present` who is present (all kept, see the module docstring), and
    `carried` the kept presences that already ended inside the current episode: they become
    the participant records of the session when it closes.
    """

    at: int | None = None
    phase: Phase = Phase.IDLE
    start: int = 0
    timer: int | None = None
    max_participants: int = 0
    present: dict[str, Opening] = field(default_factory=dict)
    carried: list[Interval] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (tuples for arrays); `from_dict` reads it back."""
        return {
            "at": self.at,
            "phase": int(self.phase),
            "start": self.start,
            "timer": self.timer,
            "max_participants": self.max_participants,
            "present": dict(self.present),
            "carried": list(self.carried),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            at=data["at"],
            phase=Phase(data["phase"]),
            start=data["start"],
            timer=data["timer"],
            max_participants=data["max_participants"],
            present={pid: (o[0], o[1], o[2]) for pid, o in data["present"].items()},
            carried=[(i[0], i[1], i[2], i[3], i[4]) for i in data["carried"]],
        )


def _user_order(user_id: str | None, user_name: str | None) -> tuple[bool, str, bool, str]:
    return (user_id is not None, user_id or "", user_name is not None, user_name or "")


def _room_wide(present: dict[str, Opening], event: Wide, append: Any) -> None:
    """SESSION-RULES step 1b: a room end or a snapshot at its instant, after that instant's
    joins and leaves. A presence it closes at the instant it opened is empty: no interval."""
    at, kind, _, people = event
    listed = {} if kind == 0 else {p[0]: p for p in people}
    for pid in sorted(present):
        if pid not in listed:
            start, user_id, user_name = present.pop(pid)
            if start < at:
                append((start, at, pid, user_id, user_name))
    for pid, user_id, user_name in listed.values():
        if pid not in present:
            present[pid] = (at, user_id, user_name)


def walk(
    present: dict[str, Opening], events: Iterable[Stamped], room_wide: Sequence[Wide] = ()
) -> list[Interval]:
    """SESSION-RULES steps 1 and 1b over events sorted by stamp and room-wide events sorted
    as `Wide`, continuing from who is `present`.

    Returns every presence, kept or not, closed ones first; `present` is not modified.
    """
    present = dict(present)
    intervals: list[Interval] = []
    append = intervals.append
    if room_wide:
        events = _merged(present, events, room_wide, append)
    for stamp_, pid, user_id, user_name in events:
        if stamp_ & 1:
            opening = present.get(pid)
            if opening is None:
                present[pid] = (stamp_ >> 1, user_id, user_name)
            elif opening[0] == stamp_ >> 1 and _user_order(user_id, user_name) < _user_order(
                opening[1], opening[2]
            ):
                # Joins at the same instant: the order they arrived in must not matter.
                present[pid] = (opening[0], user_id, user_name)
        else:
            opening = present.pop(pid, None)
            if opening is not None:
                append((opening[0], stamp_ >> 1, pid, opening[1], opening[2]))
    for pid, (start, user_id, user_name) in present.items():
        append((start, None, pid, user_id, user_name))
    return intervals


def _merged(
    present: dict[str, Opening], events: Iterable[Stamped], room_wide: Sequence[Wide], append: Any
) -> list[Stamped]:
    """Walk `events` and `room_wide` together up to the last room-wide event; the events after
    it are returned for the caller's walk to go on with."""
    ordered = events if isinstance(events, list) else list(events)
    done = 0
    for event in room_wide:
        upto = bisect_right(ordered, event[0] * 2 + 1, lo=done, key=by_stamp)
        for interval in walk(present, ordered[done:upto]):
            if interval[1] is None:
                present[interval[2]] = (interval[0], interval[3], interval[4])
            else:
                present.pop(interval[2], None)
                append(interval)
        done = upto
        _room_wide(present, event, append)
    return ordered[done:]


def unsettled(intervals: Iterable[Interval], min_presence: int) -> list[tuple[int, int]]:
    """The instants that are not settled, as disjoint sorted ranges `(a, e]`.

    A presence starting at `a` makes every instant `x` with `a < x < a + min_presence` and
    `x <= end` unsettled (the participant is present just before `x`, for too short a time).
    """
    zones = []
    for start, end, *_ in intervals:
        last = start + min_presence - 1
        if end is not None and end < last:
            last = end
        if last > start:
            zones.append((start, last))
    zones.sort()
    merged: list[tuple[int, int]] = []
    for start, last in zones:
        if merged and start <= merged[-1][1]:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((start, last))
    return merged


def presence_changes(intervals: Iterable[Interval]) -> tuple[list[int], list[int]]:
    """The instants at which any of the presences `intervals` begins or ends, in order, and
    those at which the last of them ended (nobody stays).

    Unlike `_changes`, an instant where the count nets to zero is kept: where the machine went
    idle, visits too short to count may still be going on, and one of them ending as another
    begins is where the next presence begins (see `Room._place_marks`).
    """
    changes: defaultdict[int, int] = defaultdict(int)
    for start, end, *_ in intervals:
        changes[start] += 1
        if end is not None:
            changes[end] -= 1
    instants = sorted(changes)
    vacated, count = [], 0
    for instant in instants:
        delta = changes[instant]
        count += delta
        if count == 0 and delta:
            vacated.append(instant)
    return instants, vacated


def settled_at_or_before(zones: list[tuple[int, int]], x: int) -> int:
    """The latest settled instant at or before `x`."""
    i = bisect_left(zones, (x,)) - 1
    if i >= 0 and zones[i][0] < x <= zones[i][1]:
        return zones[i][0]
    return x


class _Machine:
    """SESSION-RULES step 3 over occupancy changes, resumable from a checkpoint."""

    __slots__ = ("count", "idle_at", "max_c", "phase", "rules", "start", "timer", "windows")

    def __init__(self, checkpoint: Checkpoint, rules: Rules) -> None:
        self.rules = rules
        self.phase = checkpoint.phase
        self.start = checkpoint.start
        self.timer = checkpoint.timer
        self.max_c = checkpoint.max_participants
        self.count = len(checkpoint.present)
        # Closed sessions as (start, end, max_participants), and the instants the room emptied.
        self.windows: list[tuple[int, int, int]] = []
        self.idle_at: list[int] = []

    def run(self, changes: Sequence[tuple[int, int]], until: int, inclusive: bool) -> None:
        """Apply `changes` (see `_changes`) up to `until`.

        `inclusive` evaluates the instant `until` itself (a read at `now`); otherwise the
        machine stops just before it (a checkpoint at `until`).
        """
        solo_start = self.rules.solo_start
        solo_reset = self.rules.solo_reset
        phase, start, timer, max_c, count = (
            self.phase,
            self.start,
            self.timer,
            self.max_c,
            self.count,
        )
        windows = self.windows
        for instant, delta in changes:
            if instant > until or (instant == until and not inclusive):
                break
            # The 30-second rule looks at [start, start + solo_start), which excludes this
            # instant, so it is decided before this instant's changes.
            if phase == Phase.PENDING and start + solo_start <= instant:
                phase, max_c = Phase.ACTIVE, 1
            elif phase == Phase.ACTIVE and timer is not None and timer < instant:
                # The count stayed 1 from the timer's start to its deadline: split there.
                windows.append((start, timer, max_c))
                start, max_c, timer = timer, 1, None
            previous = count
            count += delta
            if phase == Phase.IDLE:
                start, max_c = instant, count
                phase = Phase.ACTIVE if count >= 2 else Phase.PENDING
            elif phase == Phase.PENDING:
                if count == 0:
                    phase = Phase.IDLE
                    self.idle_at.append(instant)
                elif count >= 2:
                    phase, max_c = Phase.ACTIVE, count
            else:
                timer = None  # any change of the count cancels the reset timer
                if count == 0:
                    windows.append((start, instant, max_c))
                    phase = Phase.IDLE
                    self.idle_at.append(instant)
                else:
                    max_c = max(max_c, count)
                    if count == 1 and previous >= 2:
                        timer = instant + solo_reset
        # Deadlines with no change at or after them up to `until`. A reset timer firing at
        # `until` fires after that instant's changes, so only an inclusive run sees it.
        last = until if inclusive else until - 1
        if phase == Phase.PENDING and start + solo_start <= last:
            phase, max_c = Phase.ACTIVE, 1
        if phase == Phase.ACTIVE and timer is not None and timer <= last:
            windows.append((start, timer, max_c))
            start, max_c, timer = timer, 1, None
        self.phase, self.start, self.timer, self.max_c, self.count = (
            phase,
            start,
            timer,
            max_c,
            count,
        )


def _changes(kept: Iterable[Interval], since: int | None) -> list[tuple[int, int]]:
    """Occupancy changes (SESSION-RULES step 2) of presences, for instants from `since` on.

    Returns (instant, net change) in time order: all changes at one instant take effect
    together, so a swap or a reconnect nets out to no change at all.
    """
    deltas: defaultdict[int, int] = defaultdict(int)
    for start, end, *_ in kept:
        if since is None or start >= since:
            deltas[start] += 1
        if end is not None:
            deltas[end] -= 1
    return sorted(item for item in deltas.items() if item[1])


def _records(
    windows: Sequence[tuple[int, int | None, int]],
    intervals: Iterable[Interval],
    now: int | None,
) -> list[list[Attendance]]:
    """Each kept presence clipped to each session it overlaps (SESSION-RULES step 4).

    `windows` are sorted, disjoint sessions; an open one (end None) and an open presence run
    to `now`, and their clipped piece stays open (leave None).
    """
    per_window: list[list[Attendance]] = [[] for _ in windows]
    if not windows:
        return per_window
    starts = [w[0] for w in windows]
    ends = [w[1] for w in windows]
    count = len(windows)
    far = now if now is not None else 1 << 62
    for start, end, pid, user_id, user_name in intervals:
        stop = far if end is None else end
        i = max(bisect_right(starts, start) - 1, 0)
        while i < count and starts[i] < stop:
            w_start, w_end = starts[i], ends[i]
            lo = start if start > w_start else w_start
            hi = stop if w_end is None or stop < w_end else w_end
            if hi > lo:
                leave = None if end is None and w_end is None else hi
                per_window[i].append(_attendance(Attendance, (pid, user_id, user_name, lo, leave)))
            i += 1
    for records in per_window:
        records.sort(key=_by_join)
    return per_window


class _Outcome(NamedTuple):
    sessions: list[MeetingSession]
    checkpoint: Checkpoint
    idle_at: list[int]
    # Inclusive reads: the next instant after `until` at which the passage of time alone
    # changes the result (a presence reaching `min_presence`, the 30-second or 10-minute rule,
    # or an event already known that is stamped after `until`).
    due: int | None = None


def replay(
    checkpoint: Checkpoint,
    events: Sequence[Stamped],
    until: int,
    inclusive: bool,
    rules: Rules,
    tenant: str,
    room: str,
    room_wide: Sequence[Wide] = (),
) -> tuple[_Outcome, list[Interval]]:
    """Run one room from `checkpoint` over `events` and `room_wide` (sorted, none before it)
    up to `until`.

    Inclusive: a read at `now = until` (events after it are ignored): the closed sessions and
    the ongoing one, if any. Not inclusive: the closed sessions before the latest settled
    instant at or before `until`, and the checkpoint there.
    """
    following: int | None = None
    if inclusive:
        cut = bisect_right(events, until * 2 + 1, key=by_stamp)
        if cut < len(events):
            following = events[cut][0] >> 1  # an event already known, stamped after `until`
        events = events[:cut]
        if room_wide:
            cut = bisect_right(room_wide, until, key=by_stamp)
            if cut < len(room_wide) and (following is None or room_wide[cut][0] < following):
                following = room_wide[cut][0]
            room_wide = room_wide[:cut]
    raw = walk(checkpoint.present, events, room_wide)
    min_presence = rules.min_presence
    if inclusive:
        kept = [i for i in raw if (until if i[1] is None else i[1]) - i[0] >= min_presence]
        stop = until
    else:
        stop = settled_at_or_before(unsettled(raw, min_presence), until)
        # Before a settled instant, every presence is decided: one still open there has
        # already lasted `min_presence`.
        kept = [i for i in raw if i[0] < stop and (i[1] is None or i[1] - i[0] >= min_presence)]
    machine = _Machine(checkpoint, rules)
    machine.run(_changes(kept, checkpoint.at), stop, inclusive)

    windows: list[tuple[int, int | None, int]] = list(machine.windows)
    ongoing = inclusive and machine.phase == Phase.ACTIVE
    if ongoing:
        windows.append((machine.start, None, machine.max_c))
    pieces = checkpoint.carried + kept
    records = _records(windows, pieces, until if inclusive else None)
    sessions = [
        MeetingSession(session_id(tenant, room, w_start), room, w_start, w_end, max_c, tuple(rec))
        for (w_start, w_end, max_c), rec in zip(windows, records, strict=True)
    ]
    if inclusive:
        due = [i[0] + min_presence for i in raw if i[1] is None and until - i[0] < min_presence]
        if machine.phase == Phase.PENDING:
            due.append(machine.start + rules.solo_start)
        elif machine.phase == Phase.ACTIVE and machine.timer is not None:
            due.append(machine.timer)
        if ongoing and machine.start == until:
            # A session beginning at `now` has no records yet: a record is a clipped piece of
            # positive length (SESSION-RULES step 4), so its participants appear 1 µs later.
            due.append(until + 1)
        if following is not None:
            due.append(following)
        return _Outcome(sessions, checkpoint, machine.idle_at, min(due, default=None)), raw
    episode = machine.start
    carried = (
        [p for p in pieces if p[1] is not None and episode < p[1] < stop]
        if machine.phase != Phase.IDLE
        else []
    )
    present = {
        pid: (start, user_id, user_name)
        for start, end, pid, user_id, user_name in raw
        if start < stop and (end is None or end >= stop)
    }
    settled = Checkpoint(
        stop, machine.phase, machine.start, machine.timer, machine.max_c, present, carried
    )
    return _Outcome(sessions, settled, machine.idle_at), raw
