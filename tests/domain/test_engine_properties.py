"""Properties of the engine, checked by hypothesis against a brute-force reading of the rules.

The reference below is written from SESSION-RULES directly and independently of the engine: it
counts participants at every whole second and steps the state machine one second at a time.
With whole-second events and parameters, every transition falls on a whole second, so the
reference is exact.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from roomlog.domain.batch import sessionize
from roomlog.domain.engine import Room, newest_first, stamp
from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import MeetingSession, session_id
from tests.helpers import Shape, histories, shape

RULES = Rules.seconds(min_presence=2, solo_start=3, solo_reset=5)
MIN, SOLO, RESET = 2, 3, 5


def reference(events: list[PresenceEvent], now: int) -> list[Shape]:
    """SESSION-RULES for one room, in whole seconds, by brute force. Oldest first."""
    per_pid: defaultdict[str, list[PresenceEvent]] = defaultdict(list)
    for e in {(e.type, e.participant_id, e.at, e.user_id): e for e in events}.values():
        if e.at <= now * MICROS:
            per_pid[e.participant_id].append(e)
    kept: list[tuple[str, int, int | None]] = []
    for pid, mine in per_pid.items():
        mine.sort(key=lambda e: (e.at, e.type == JOINED))
        opened: int | None = None
        for e in mine:
            t = e.at // MICROS
            if e.type == JOINED and opened is None:
                opened = t
            elif e.type == LEFT and opened is not None:
                if t - opened >= MIN:
                    kept.append((pid, opened, t))
                opened = None
        if opened is not None and now - opened >= MIN:
            kept.append((pid, opened, None))

    def count(t: int) -> int:
        return sum(1 for _, s, e in kept if s <= t and (e is None or t < e))

    counts = {t: count(t) for t in range(-1, now + 1)}
    windows: list[tuple[int, int | None]] = []
    state, start, timer = "idle", 0, None
    for t in range(0, now + 1):
        before, c = counts[t - 1], counts[t]
        if state == "pending" and t >= start + SOLO:
            state = "active"
        if c != before:
            if state == "idle":
                state, start = ("active" if c >= 2 else "pending"), t
            elif state == "pending":
                state = "idle" if c == 0 else ("active" if c >= 2 else "pending")
            else:
                timer = None
                if c == 0:
                    windows.append((start, t))
                    state = "idle"
                elif c == 1 and before >= 2:
                    timer = t + RESET
        if state == "active" and timer == t and c == 1:
            windows.append((start, t))
            start, timer = t, None
    if state == "active":
        windows.append((start, None))

    result: list[Shape] = []
    for w_start, w_end in windows:
        stop = now if w_end is None else w_end
        inside = range(w_start, stop + 1 if w_end is None else stop)
        biggest = max((counts[t] for t in inside), default=counts[w_start])
        records: list[tuple[str, float, float | None]] = []
        for pid, began, ended in kept:
            lo, hi = max(began, w_start), min(now if ended is None else ended, stop)
            if hi > lo:
                leave = None if ended is None and w_end is None else hi
                records.append((pid, float(lo), None if leave is None else float(leave)))
        records.sort(key=lambda r: (r[1], r[0]))
        result.append((float(w_start), None if w_end is None else float(w_end), biggest, records))
    return result


def batch(events: list[PresenceEvent], now: int) -> list[Shape]:
    return [shape(s) for s in reversed(sessionize(events, now * MICROS, RULES))]


@given(histories(), st.integers(min_value=0, max_value=80))
def test_batch_matches_the_brute_force_reading_of_the_rules(
    events: list[PresenceEvent], now: int
) -> None:
    assert batch(events, now) == reference(events, now)


@given(histories(rooms=("r", "s")), st.integers(min_value=0, max_value=80), st.randoms())
def test_arrival_order_and_duplicates_do_not_matter(
    events: list[PresenceEvent], now: int, rnd: random.Random
) -> None:
    replayed = events + [rnd.choice(events) for _ in range(len(events) // 2)] if events else []
    rnd.shuffle(replayed)
    assert sessionize(replayed, now * MICROS, RULES) == sessionize(events, now * MICROS, RULES)


@given(histories(), st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=4))
def test_incremental_equals_batch_for_every_prefix_and_now(
    events: list[PresenceEvent], nows: list[int]
) -> None:
    room = Room("r", RULES)
    # One that keeps a restart point after every read it can: reads start from those.
    eager = Room("r", RULES)
    eager.restart_after, eager.restart_points = 0, 2
    # One that thins its restart points where the room was empty beyond two.
    thin = Room("r", RULES)
    thin.empty_marks = 2
    for n, event in enumerate(events, start=1):
        room.add(event)
        eager.add(event)
        thin.add(event)
        for now in nows:
            expected = batch(events[:n], now)
            assert [shape(s) for s in room.sessions(now * MICROS)] == expected
            assert [shape(s) for s in eager.sessions(now * MICROS)] == expected
            assert [shape(s) for s in thin.sessions(now * MICROS)] == expected


@given(histories(), st.integers(min_value=0, max_value=80), st.randoms())
def test_settling_as_time_passes_loses_nothing(
    events: list[PresenceEvent], now: int, rnd: random.Random
) -> None:
    # Arrivals that are late by up to 8 seconds; the room settles up to what can still come.
    arrivals = sorted(events, key=lambda e: e.at + rnd.randint(0, 8) * MICROS)
    room = Room("r", RULES)
    # Restart points (late events invalidate them; the oldest go beyond a few).
    room.restart_after, room.restart_points = rnd.choice([0, 1, 3]), rnd.choice([1, 2, 16])
    final: list[MeetingSession] = []
    for i, event in enumerate(arrivals):
        room.add(event)
        still_to_come = [e.at for e in arrivals[i + 1 :]]
        until = min([*still_to_come, now * MICROS])
        if rnd.random() < 0.5:
            final += room.settle(until)
        elif rnd.random() < 0.5:
            room.sessions(max(until, now * MICROS))  # a read between arrivals
    assert [shape(s) for s in final + room.sessions(now * MICROS)] == batch(events, now)


@given(histories(), st.integers(min_value=0, max_value=80), st.randoms())
def test_state_resumed_from_its_serialised_form_goes_on_the_same(
    events: list[PresenceEvent], now: int, rnd: random.Random
) -> None:
    ordered = sorted(events, key=lambda e: e.at)
    half = len(ordered) // 2
    room = Room("r", RULES)
    for event in ordered[:half]:
        room.add(event)
    until = min(ordered[half].at, now * MICROS) if half < len(ordered) else now * MICROS
    final = room.settle(until)
    resumed = Room.from_dict(room.to_dict(), RULES)
    for event in ordered[half:]:
        resumed.add(event)
    assert [shape(s) for s in final + resumed.sessions(now * MICROS)] == batch(events, now)


# Default rules, microsecond times, two rooms: the invariants hold at any scale.
fine_histories = histories(
    rooms=("r", "s"), participants="ABCDE", latest=3_000 * MICROS, step=1, most=30
)


@given(fine_histories, st.integers(min_value=0, max_value=3_500 * MICROS))
def test_sessions_are_well_formed(events: list[PresenceEvent], now: int) -> None:
    sessions = sessionize(events, now)
    by_room: defaultdict[str, list[MeetingSession]] = defaultdict(list)
    for s in sessions:
        by_room[s.room].append(s)
        end = now if s.end is None else s.end
        assert s.start <= end <= now
        assert s.id == session_id("default", s.room, s.start)
        for record in s.participants:
            leave = now if record.leave is None else record.leave
            assert s.start <= record.join < leave <= end
        # max_participants: the most records overlapping at one instant (a brute-force count).
        instants = {r.join for r in s.participants} | {s.start}
        most = max(
            len(
                {
                    r.participant_id
                    for r in s.participants
                    if r.join <= t < (now + 1 if r.leave is None else r.leave)
                }
            )
            for t in instants
        )
        assert s.max_participants == most
    for mine in by_room.values():
        mine.sort(key=lambda s: s.start)
        for earlier, later in itertools.pairwise(mine):
            assert earlier.end is not None and earlier.end <= later.start
    assert [s.id for s in sessionize(events, now)] == [s.id for s in sessions]


def fed(events: list[PresenceEvent]) -> Room:
    """A room that has been given `events`, in their order."""
    room = Room("r", RULES)
    for event in events:
        room.add(event)
    return room


def _frozen(sessions: list[MeetingSession]) -> list[tuple[object, ...]]:
    """What a session is, leaving out how long the ongoing parts have lasted so far."""
    return [
        (
            s.id,
            s.start,
            s.end,
            s.max_participants,
            [(a.participant_id, a.join, a.leave) for a in s.participants],
        )
        for s in sessions
    ]


@given(histories(), st.integers(min_value=0, max_value=80), st.data())
def test_nothing_changes_by_time_alone_before_the_room_is_due(
    events: list[PresenceEvent], now_s: int, data: st.DataObject
) -> None:
    room = fed(events)
    now = now_s * MICROS
    room.sessions(now)
    due = room.due
    assert due is None or due > now
    # From `now` until `due`, the sessions only grow older.
    last = now + 100 * MICROS if due is None else due - 1
    if last <= now:
        return
    later = data.draw(st.integers(min_value=now + 1, max_value=last))
    fresh = fed(events)
    assert _frozen(fresh.sessions(later)) == _frozen(room.sessions(now))


@given(histories(), st.integers(min_value=0, max_value=80))
def test_the_due_instant_is_a_rule_instant_or_a_known_event(
    events: list[PresenceEvent], now_s: int
) -> None:
    # Either nothing is pending, or the deadline is a rule instant or an event after `now`.
    room = fed(events)
    now = now_s * MICROS
    sessions = room.sessions(now)
    if room.due is not None:
        starts = {e.at for e in events}
        rules = (0, MIN * MICROS, SOLO * MICROS, RESET * MICROS)
        deadlines = {t + d for t in starts for d in rules}
        # A session that begins at `now` has its first records (of positive length) 1 µs on.
        if any(s.start == now and s.end is None for s in sessions):
            deadlines.add(now + 1)
        assert room.due > now
        assert room.due in deadlines


@given(histories(), st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=80))
def test_who_is_present_does_not_depend_on_what_was_read_before(
    events: list[PresenceEvent], now_s: int, settle_s: int
) -> None:
    now = now_s * MICROS
    read = Room("r", RULES)
    for event in events[: len(events) // 2]:
        read.add(event)
    read.settle(min(settle_s, now_s) * MICROS)
    for event in events[len(events) // 2 :]:
        if read.checkpoint.at is None or event.at >= read.checkpoint.at:
            read.add(event)
    read.sessions(now)
    walked = Room("r", RULES, checkpoint=read.checkpoint)
    walked.extend(
        stamp(e) for e in events if read.checkpoint.at is None or e.at >= read.checkpoint.at
    )
    assert read.present(now) == walked.present(now)
    # Against the events themselves: who joined and has not left since, at `now`.
    last: dict[str, tuple[int, bool]] = {}
    for e in sorted(events, key=lambda e: (e.at, e.type == JOINED)):
        if e.at <= now and not (
            e.type == JOINED and e.participant_id in last and last[e.participant_id][1]
        ):
            last[e.participant_id] = (e.at, e.type == JOINED)
    if read.checkpoint.at is None:
        assert {p[0] for p in read.present(now)} == {pid for pid, (_, on) in last.items() if on}


def replayed(events: list[PresenceEvent], now: int, rules: Rules) -> list[MeetingSession]:
    """The incremental face fed every event, one room at a time."""
    rooms: dict[str, Room] = {}
    for event in events:
        rooms.setdefault(event.room, Room(event.room, rules)).add(event)
    return newest_first(s for room in rooms.values() for s in room.sessions(now))


# Two rooms that share participant ids, users that differ between joins at one instant, and
# microsecond times: what the vectorised batch face must sort out exactly as the replay does.
shared_histories = histories(
    rooms=("r", "s"),
    participants="ABCD",
    latest=1_500 * MICROS,
    step=MICROS // 4,
    most=40,
    user_ids=(None, "u1", "u2"),
)
some_rules = st.sampled_from(
    [
        Rules(),
        Rules.seconds(min_presence=0, solo_start=1, solo_reset=5),
        Rules.seconds(min_presence=1, solo_start=30, solo_reset=60),
        Rules.seconds(min_presence=10, solo_start=0.5, solo_reset=0.25),
    ]
)


@given(shared_histories, st.integers(min_value=0, max_value=1_600 * MICROS), some_rules)
def test_the_batch_face_equals_the_incremental_replay(
    events: list[PresenceEvent], now: int, rules: Rules
) -> None:
    assert sessionize(events, now, rules) == replayed(events, now, rules)


@given(shared_histories, st.integers(min_value=0, max_value=1_600 * MICROS))
def test_parameters_beyond_the_vectorised_range_give_the_same_sessions(
    events: list[PresenceEvent], now: int
) -> None:
    # A reset longer than any history here never fires, whether it is 10^7 s or 2^61 µs; the
    # second is beyond what the vectorised face computes on, so the replay answers it.
    never = Rules(solo_reset=10**13)
    beyond = Rules(solo_reset=1 << 61)
    assert sessionize(events, now, beyond) == sessionize(events, now, never)
