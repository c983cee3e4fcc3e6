"""SESSION-RULES step 1b: room ends and snapshots are events of the set. Both faces of the
engine against a brute-force reading of the step, whatever order the events arrive in."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from roomlog.domain.batch import sessionize
from roomlog.domain.engine import Room, wide
from roomlog.domain.events import (
    JOINED,
    LEFT,
    MICROS,
    ROOM_ENDED,
    ROOM_SNAPSHOT,
    PresenceEvent,
    RoomEvent,
    RoomEventType,
)
from tests.domain.test_engine_properties import RULES, reference
from tests.helpers import Shape, histories, shape

PEOPLE = "ABCDE"


@st.composite
def room_events(draw: st.DrawFn, rooms: tuple[str, ...] = ("r",)) -> list[RoomEvent]:
    found = []
    for n in range(draw(st.integers(min_value=0, max_value=4))):
        kind: RoomEventType = draw(st.sampled_from([ROOM_ENDED, ROOM_SNAPSHOT]))
        listed: tuple[tuple[str, str | None, str | None], ...] = ()
        if kind == ROOM_SNAPSHOT:
            chosen = draw(st.sets(st.sampled_from(PEOPLE), max_size=3))
            listed = tuple((p, None, None) for p in sorted(chosen))
        at = draw(st.integers(min_value=0, max_value=60)) * MICROS
        found.append(RoomEvent(f"w{n}", kind, draw(st.sampled_from(rooms)), at, listed))
    return found


def expanded(events: list[PresenceEvent], room: list[RoomEvent]) -> list[PresenceEvent]:
    """Step 1b by hand: each participant's events and the room-wide ones, merged (leaves, then
    joins, then room ends, then snapshots, by id), walked into presences, written back as the
    joins and leaves they are. An empty presence (closed where it opened) is none."""
    made: list[PresenceEvent] = []
    everyone = {e.participant_id for e in events} | {p for w in room for p, _, _ in w.people}
    for pid in sorted(everyone):
        own = [(e.at, 0 if e.type == LEFT else 1, "", e) for e in events if e.participant_id == pid]
        rank = {ROOM_ENDED: 2, ROOM_SNAPSHOT: 3}
        merged = sorted(own + [(w.at, rank[w.type], w.id, w) for w in room], key=lambda m: m[:3])
        opened: int | None = None
        for at, kind, _, item in merged:
            listed = isinstance(item, RoomEvent) and any(p == pid for p, _, _ in item.people)
            closes = kind == 0 or (kind >= 2 and not listed)
            opens = kind == 1 or (kind == 3 and listed)
            if opened is not None and closes:
                if at > opened:
                    made.append(PresenceEvent(f"{pid}+{opened}", JOINED, "r", pid, opened))
                    made.append(PresenceEvent(f"{pid}-{at}", LEFT, "r", pid, at))
                opened = None
            elif opened is None and opens:
                opened = at
        if opened is not None:
            made.append(PresenceEvent(f"{pid}+{opened}", JOINED, "r", pid, opened))
    return made


def batch(events: list[PresenceEvent], room: list[RoomEvent], now: int) -> list[Shape]:
    found = sessionize(events, now * MICROS, RULES, room_events=room)
    return [shape(s) for s in reversed(found)]


@settings(max_examples=50)
@given(histories(participants=PEOPLE), room_events(), st.integers(min_value=0, max_value=80))
def test_the_batch_face_matches_step_1b_read_by_hand(
    events: list[PresenceEvent], room: list[RoomEvent], now: int
) -> None:
    upto = [w for w in room if w.at <= now * MICROS]
    assert batch(events, room, now) == reference(expanded(events, upto), now)


@settings(max_examples=50)
@given(
    histories(participants=PEOPLE),
    room_events(),
    st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=3),
    st.randoms(),
)
def test_the_incremental_face_gives_the_same_in_any_arrival_order(
    events: list[PresenceEvent], room: list[RoomEvent], nows: list[int], rnd: random.Random
) -> None:
    arrivals: list[PresenceEvent | RoomEvent] = [*events, *room]
    rnd.shuffle(arrivals)
    state = Room("r", RULES)
    for n, item in enumerate(arrivals, start=1):
        if isinstance(item, RoomEvent):
            state.add_room_event(item)
        else:
            state.add(item)
        so_far = arrivals[:n]
        plain = [e for e in so_far if isinstance(e, PresenceEvent)]
        wide_ = [e for e in so_far if isinstance(e, RoomEvent)]
        for now in nows:
            assert [shape(s) for s in state.sessions(now * MICROS)] == batch(plain, wide_, now)
    # Who is present agrees with the sessions' open records.
    for now in nows:
        present = {p[0] for p in state.present(now * MICROS)}
        opened = {
            r.participant_id
            for s in state.sessions(now * MICROS)
            if s.end is None
            for r in s.participants
            if r.leave is None
        }
        assert opened <= present


@settings(max_examples=50)
@given(histories(participants=PEOPLE), room_events(), st.integers(0, 80), st.randoms())
def test_settling_and_resuming_from_the_stored_form_lose_nothing(
    events: list[PresenceEvent], room: list[RoomEvent], now: int, rnd: random.Random
) -> None:
    arrivals: list[PresenceEvent | RoomEvent] = sorted(
        [*events, *room], key=lambda e: e.at + rnd.randint(0, 8) * MICROS
    )
    state = Room("r", RULES)
    final = []
    for i, item in enumerate(arrivals):
        if isinstance(item, RoomEvent):
            state.add_room_event(item)
        else:
            state.add(item)
        until = min([*(e.at for e in arrivals[i + 1 :]), now * MICROS])
        if rnd.random() < 0.5:
            final += state.settle(until)
        if rnd.random() < 0.3:
            state = Room.from_dict(state.to_dict(), RULES)
    assert [shape(s) for s in final + state.sessions(now * MICROS)] == batch(events, room, now)


def test_a_join_that_arrives_after_the_room_end_that_closes_it_is_closed() -> None:
    end = RoomEvent("end", ROOM_ENDED, "r", 100 * MICROS)
    a = PresenceEvent("a", JOINED, "r", "A", 0)
    b = PresenceEvent("b", JOINED, "r", "B", 10 * MICROS)
    orders: list[list[PresenceEvent | RoomEvent]] = [[a, b, end], [end, a, b], [a, end, b]]
    for order in orders:
        state = Room("r", RULES)
        for item in order:
            if isinstance(item, RoomEvent):
                state.add_room_event(item)
            else:
                state.add(item)
        [session] = state.sessions(500 * MICROS)
        assert session.end == 100 * MICROS
        assert state.present(500 * MICROS) == []
    assert sessionize([b, a], 500 * MICROS, RULES, room_events=[end])[0].end == 100 * MICROS
    # The same room end twice is one event.
    state = Room("r", RULES)
    state.add_room_event(end)
    state.add_room_event(end)
    assert state.pending_events == 1
    assert wide(end) == (100 * MICROS, 0, "end", ())
