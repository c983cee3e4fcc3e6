"""The incremental face of the session engine: SESSION-RULES steps 1-4 for one room at a time.

A replay walks each participant's events into presence intervals (step 1), keeps those of at
least `min_presence`, turns them into occupancy changes (step 2), runs the state machine over
them (step 3), then clips the kept intervals to the sessions (step 4). `Room` starts that
replay from a `Checkpoint` instead of from the beginning. The batch face, over every room at
once, is `roomlog.domain.batch`; the property tests check that the two agree.

A checkpoint at instant `x` is the machine's state just before the events at `x` take effect.
It is only taken at a *settled* instant: one where every participant present just before `x`
(by the events stamped before `x`) has already been present for `min_presence`. At such an
instant, no event stamped at `x` or later can change anything before `x`:
- it cannot reopen or move a presence that closed before `x` (a participant's walk up to `x`
  uses only that participant's earlier events);
- it can only end a presence open at `x` at `x` or later, leaving it at least `min_presence`
  long, so it stays kept: the count before `x` does not change, nor does the machine's state.
So a late event stamped at `t` only needs a replay from the last settled instant at or before
`t`, and an incremental state that has settled its past can forget the events before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from roomlog.domain.events import PresenceEvent, RoomEvent
from roomlog.domain.replay import (
    Checkpoint,
    Interval,
    LateEvent,
    Presence,
    Stamped,
    Wide,
    by_stamp,
    presence_changes,
    replay,
    settled_at_or_before,
    stamp,
    unsettled,
    walk,
    wide,
)
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.sessions import MeetingSession

# A read that replays more events than this places a restart point (`Room._restart_point`),
# and a room keeps at most `RESTART_POINTS` of them (each holds who is present and the
# records of the session under way): the oldest go first, and a late event before the
# oldest left replays from the checkpoint, as it did without them.
RESTART_AFTER = 32
RESTART_POINTS = 16
# A room keeps at most this many restart points where it was found empty (one per visit in
# a room of short visits): past it, every other one of the older half goes, so that they
# thin out with age instead of piling up until the next settle.
EMPTY_MARKS = 64

# The engine's forms of events and checkpoints, for its callers.
__all__ = [
    "Checkpoint",
    "LateEvent",
    "Presence",
    "Room",
    "Stamped",
    "Wide",
    "newest_first",
    "stamp",
    "wide",
]


def newest_first(sessions: Iterable[MeetingSession]) -> list[MeetingSession]:
    """Daily's order for `/meetings`: latest start first, then room name, descending.

    The service pages through sessions in this order with an index on (start, room).
    """
    return sorted(sessions, key=lambda s: (s.start, s.room), reverse=True)


class Room:
    """The incremental face: one room's state, fed events in any order, read at any `now`.

    The state is a checkpoint plus the events since it (`to_dict` / `from_dict`), so a service
    can keep it in a database row and resume it in another process. `settle(until)` moves the
    checkpoint forward and hands back the sessions that can no longer change; the caller
    promises that no event stamped before `until` is still to come, and `add` raises
    `LateEvent` for one that does come (rebuild the room from an earlier checkpoint then).
    Between settles, a late event replays only from the last instant the room was empty
    and settled before it (see the module docstring for why that instant is safe).
    """

    restart_after = RESTART_AFTER
    restart_points = RESTART_POINTS
    empty_marks = EMPTY_MARKS

    def __init__(
        self,
        name: str,
        rules: Rules = DEFAULT_RULES,
        tenant: str = "default",
        checkpoint: Checkpoint | None = None,
        events: Iterable[Stamped] = (),
        room_wide: Iterable[Wide] = (),
    ) -> None:
        self.name = name
        self.rules = rules
        self.tenant = tenant
        self.checkpoint = checkpoint if checkpoint is not None else Checkpoint()
        self._events: list[Stamped] = []
        self._sorted = True
        # From the last reads: the sessions that closed, and settled instants to restart from
        # (the room's state there, with how many of those sessions closed before it): where
        # the room was found empty, and every so often where a long replay found it settled.
        # A late event invalidates what follows it.
        self._closed: list[MeetingSession] = []
        self._marks: list[tuple[Checkpoint, int]] = []
        # How many events the last attempt to place a restart point had replayed.
        self._tried = 0
        self._dirty: int | None = None
        # What the last read needs to place its marks; they are placed by the next read, if any.
        self._unmarked: tuple[list[Interval], list[int], int, int] | None = None
        # After a read at `now`: the next instant at which time alone changes the sessions.
        self.due: int | None = None
        self._present: tuple[int, list[Presence]] | None = None
        # Room ends and snapshots since the checkpoint (SESSION-RULES step 1b), sorted.
        self._wide: list[Wide] = []
        self.extend(events)
        self.extend_wide(room_wide)

    def add(self, event: PresenceEvent) -> None:
        if event.room != self.name:
            raise ValueError(f"event for room {event.room!r} added to room {self.name!r}")
        self.extend((stamp(event),))

    def check_late(self, events: Iterable[Stamped], room_wide: Iterable[Wide] = ()) -> None:
        """`LateEvent` at the earliest of `events` and `room_wide` stamped before the
        checkpoint, if any: a rebuild must start at or before every one of them, not at the
        first one met."""
        floor = self.checkpoint.at
        if floor is None:
            return
        late = [e[0] >> 1 for e in events if e[0] >> 1 < floor]
        late += [w[0] for w in room_wide if w[0] < floor]
        if late:
            raise LateEvent(min(late), floor)

    def extend(self, events: Iterable[Stamped]) -> None:
        """Add events in the engine's form; see `stamp`."""
        events = list(events)
        self.check_late(events)
        store = self._events
        last = store[-1][0] if store else -1
        earliest: int | None = None
        for event in events:
            at = event[0] >> 1
            if event[0] < last:
                self._sorted = False
            last = event[0]
            store.append(event)
            if earliest is None or at < earliest:
                earliest = at
        if earliest is not None and (self._dirty is None or earliest < self._dirty):
            self._dirty = earliest

    def add_room_event(self, event: RoomEvent) -> None:
        if event.room != self.name:
            raise ValueError(f"event for room {event.room!r} added to room {self.name!r}")
        self.extend_wide((wide(event),))

    def extend_wide(self, events: Iterable[Wide]) -> None:
        """Add room ends and snapshots in the engine's form; see `wide`. One already held
        (the same id at the same instant) is not added again."""
        events = list(events)
        self.check_late((), events)
        held = {(w[0], w[2]) for w in self._wide}
        earliest: int | None = None
        for event in events:
            if (event[0], event[2]) in held:
                continue
            held.add((event[0], event[2]))
            self._wide.append(event)
            if earliest is None or event[0] < earliest:
                earliest = event[0]
        if earliest is not None:
            self._wide.sort(key=_wide_order)
            if self._dirty is None or earliest < self._dirty:
                self._dirty = earliest

    def _ordered(self) -> list[Stamped]:
        if not self._sorted:
            self._events.sort(key=by_stamp)
            self._sorted = True
        return self._events

    def sessions(self, now: int) -> list[MeetingSession]:
        """The sessions since the checkpoint as they stand at `now`, oldest first."""
        if self.checkpoint.at is not None and now < self.checkpoint.at:
            raise ValueError(f"now ({now}) is before the room's checkpoint ({self.checkpoint.at})")
        events = self._ordered()
        start, kept_closed, kept_marks, offset, since = self._restart_from(now)
        outcome, raw = replay(
            start,
            events[offset:],
            now,
            True,
            self.rules,
            self.tenant,
            self.name,
            self._wide[since:],
        )
        new = outcome.sessions
        if new and new[-1].end is None:
            newly_closed, ongoing = new[:-1], new[-1:]
        else:
            newly_closed, ongoing = new, []
        self._closed = self._closed[:kept_closed] + newly_closed
        self._marks = self._marks[:kept_marks]
        self._unmarked = (raw, outcome.idle_at, kept_closed, now)
        self._restart_point(start, events[offset:], now, kept_closed, since)
        self._dirty = None
        self.due = outcome.due
        # The replay started where the room was empty (a mark) or from the checkpoint's
        # presences, so its open presences are everyone in the room at `now`.
        self._present = (now, [(i[2], i[0], i[3], i[4]) for i in raw if i[1] is None])
        return self._closed + ongoing

    def _restart_from(self, upto: int) -> tuple[Checkpoint, int, int, int, int]:
        """Where a replay up to `upto` starts: the latest restart point at or before it that
        no event added since the last read precedes (else the checkpoint), with the number
        of sessions that closed before it, of restart points kept, and the offsets of its
        first event and room-wide event."""
        self._place_marks()
        limit = upto if self._dirty is None else min(self._dirty, upto)
        start, closed, kept = self.checkpoint, 0, 0
        for i in range(len(self._marks) - 1, -1, -1):
            mark, closed_before = self._marks[i]
            if mark.at is not None and mark.at <= limit:
                start, closed, kept = mark, closed_before, i + 1
                break
        if start.at is None:
            return start, closed, kept, 0, 0
        offset = bisect_left(self._ordered(), start.at * 2, key=by_stamp)
        return start, closed, kept, offset, bisect_left(self._wide, start.at, key=by_stamp)

    def _restart_point(
        self, start: Checkpoint, events: list[Stamped], now: int, closed: int, since: int
    ) -> None:
        """After a read that replayed many events, keep the room's state at the latest settled
        instant at or before `now` as a restart point, so that the next read replays only
        what follows it. In order, a room's events then cost a replay of about
        `restart_after` each, not of everything since the checkpoint. Tried again only once
        as many more events have come, where a busy room is never settled for long."""
        replayed, often = len(events), self.restart_after
        if replayed <= often or replayed < self._tried + often:
            return
        self._tried = replayed
        # At the latest settled instant up to just after the newest event held, not up to
        # `now`: a server's clock runs ahead of the stamps it receives, and an event stamped
        # between the two would leave a point placed at `now` behind it, unusable.
        latest = self.latest  # held events were replayed: never None here
        until = now if latest is None else min(now, latest + 1)
        outcome, _ = replay(
            start, events, until, False, self.rules, self.tenant, self.name, self._wide[since:]
        )
        mark = outcome.checkpoint
        if mark.at is None or (start.at is not None and mark.at <= start.at):
            return
        if self._marks and self._marks[-1][0].at is not None and self._marks[-1][0].at >= mark.at:
            return
        self._marks.append((mark, closed + len(outcome.sessions)))
        self._tried = 0
        if len(self._marks) > self.restart_points:
            del self._marks[0]

    def present(self, now: int) -> list[Presence]:
        """Who is in the room at `now` (whether or not `min_presence` has passed yet).

        `(participant_id, join, user_id, user_name)` tuples, earliest join first.
        """
        if self._present is not None and self._present[0] == now and self._dirty is None:
            return sorted(self._present[1], key=itemgetter(1, 0))
        events = self._ordered()
        upto = bisect_right(events, now * 2 + 1, key=by_stamp)
        room_wide = self._wide[: bisect_right(self._wide, now, key=by_stamp)]
        walked = walk(self.checkpoint.present, events[:upto], room_wide)
        open_ = [i for i in walked if i[1] is None]
        return sorted(((i[2], i[0], i[3], i[4]) for i in open_), key=itemgetter(1, 0))

    def _place_marks(self) -> None:
        """Record where the last read found the room empty and settled: restart points."""
        if self._unmarked is None:
            return
        raw, idle_at, closed_before, now = self._unmarked
        self._unmarked = None
        zones = unsettled(raw, self.rules.min_presence)
        change_points, vacated = presence_changes(raw)
        ends = [s.end for s in self._closed[closed_before:] if s.end is not None]
        # Where the machine went idle, and where nobody at all was left, kept or not (the
        # machine is idle there too, but never went idle if nobody stayed `min_presence`).
        emptied_at = sorted(set(idle_at).union(vacated))
        for emptied in emptied_at:
            # The room is empty from `emptied` until the next presence begins, if the latest
            # instant in that stretch is settled. Every instant of the stretch then is, and
            # replays the same events from there: the earliest, just after `emptied`, is the
            # restart point, as it also serves an event that comes later stamped inside the
            # stretch (before the read's `now`, say).
            nxt = bisect_right(change_points, emptied)
            upto = change_points[nxt] if nxt < len(change_points) else now
            if not emptied < settled_at_or_before(zones, upto) <= now:
                continue
            mark = emptied + 1
            last = self._marks[-1][0].at if self._marks else None
            if last is None or last < mark:
                self._marks.append((Checkpoint(at=mark), closed_before + bisect_right(ends, mark)))
        if len(self._marks) > self.empty_marks:
            older = len(self._marks) // 2
            self._marks[:older] = self._marks[:older:2]

    def settle(self, until: int) -> list[MeetingSession]:
        """Move the checkpoint to the latest settled instant at or before `until`.

        Returns the sessions that closed before it, which no later event can change.
        """
        if self.checkpoint.at is not None and until <= self.checkpoint.at:
            return []
        events = self._ordered()
        # From where a read at `until` would start: the sessions that closed before it are
        # those the last read found, and every instant from there on replays the same.
        start, closed, _, begin, wide_begin = self._restart_from(until)
        # Only what is stamped up to `until` decides the settled instant at or before it and
        # the state there: a presence still open at `until` is open at that instant too, and
        # no later join can unsettle it (the module docstring).
        upto = bisect_right(events, until * 2 + 1, key=by_stamp)
        wide_upto = bisect_right(self._wide, until, key=by_stamp)
        outcome, _ = replay(
            start,
            events[begin:upto],
            until,
            False,
            self.rules,
            self.tenant,
            self.name,
            self._wide[wide_begin:wide_upto],
        )
        settled = self._closed[:closed] + outcome.sessions
        cut = outcome.checkpoint.at
        assert cut is not None
        del events[: bisect_left(events, cut * 2, key=by_stamp)]
        del self._wide[: bisect_left(self._wide, cut, key=by_stamp)]
        self.checkpoint = outcome.checkpoint
        self._closed, self._marks, self._dirty, self._unmarked = [], [], None, None
        self._present, self._tried = None, 0
        return settled

    @property
    def earliest(self) -> int | None:
        """The instant of the oldest event held since the checkpoint (None: none held)."""
        found = [self._ordered()[0][0] >> 1] if self._events else []
        if self._wide:
            found.append(self._wide[0][0])
        return min(found) if found else None

    @property
    def latest(self) -> int | None:
        """The instant of the newest event known (the checkpoint's when none is held)."""
        found = [self._ordered()[-1][0] >> 1] if self._events else []
        if self._wide:
            found.append(self._wide[-1][0])
        return max(found) if found else self.checkpoint.at

    @property
    def pending_events(self) -> int:
        """How many events the state holds since its checkpoint."""
        return len(self._events) + len(self._wide)

    def held(self) -> list[Stamped]:
        """The events held since the checkpoint, in the engine's form, oldest first."""
        return list(self._ordered())

    def to_dict(self, events: bool = True) -> dict[str, Any]:
        """The room as JSON-ready data, resumable with `from_dict`; without `events`, less the
        events it holds (`held`), for a caller that keeps them apart."""
        found: dict[str, Any] = {
            "room": self.name,
            "checkpoint": self.checkpoint.to_dict(),
            "events": self.held() if events else [],
        }
        if self._wide:
            found["wide"] = [
                [at, kind, eid, [list(p) for p in people]] for at, kind, eid, people in self._wide
            ]
        return found

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], rules: Rules = DEFAULT_RULES, tenant: str = "default"
    ) -> Room:
        return cls(
            data["room"],
            rules,
            tenant,
            Checkpoint.from_dict(data["checkpoint"]),
            ((e[0], e[1], e[2], e[3]) for e in data["events"]),
            (
                (w[0], w[1], w[2], tuple((p[0], p[1], p[2]) for p in w[3]))
                for w in data.get("wide", ())
            ),
        )


def _wide_order(event: Wide) -> tuple[int, int, str]:
    return event[0], event[1], event[2]
