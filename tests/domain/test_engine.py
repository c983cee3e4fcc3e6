"""The worked examples of SESSION-RULES, each as a named test, on both faces of the engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roomlog.domain.batch import sessionize
from roomlog.domain.engine import Checkpoint, LateEvent, Room, stamp, wide
from roomlog.domain.events import MICROS, ROOM_ENDED, PresenceEvent, RoomEvent
from roomlog.domain.replay import Stamped, replay
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import MeetingSession, session_id
from tests.helpers import Shape, join, leave, shape

NOW = 10_000


def both_faces(events: list[PresenceEvent], now: float = NOW) -> list[Shape]:
    """Sessions oldest first, checked to be the same from the batch and the incremental face."""
    now_us = round(now * MICROS)
    batch = [shape(s) for s in reversed(sessionize(events, now_us))]
    room = Room("r")
    for event in reversed(events):
        room.add(event)
    assert [shape(s) for s in room.sessions(now_us)] == batch
    return batch


def test_example_01_alone_for_less_than_30_seconds_is_no_session() -> None:
    assert both_faces([join("A", 0), leave("A", 20)]) == []


def test_example_02_alone_for_45_seconds_is_one_session() -> None:
    assert both_faces([join("A", 0), leave("A", 45)]) == [(0, 45, 1, [("A", 0, 45)])]


def test_example_03_short_presence_is_dropped_and_short_solo_makes_nothing() -> None:
    events = [join("A", 0), join("B", 12), leave("A", 15), leave("B", 18)]
    assert both_faces(events) == []


def test_example_04_two_people_one_session() -> None:
    events = [join("A", 0), join("B", 20), leave("B", 200), leave("A", 300)]
    assert both_faces(events) == [(0, 300, 2, [("A", 0, 300), ("B", 20, 200)])]


def test_example_05_ten_minutes_alone_splits_the_session() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), leave("A", 2000)]
    assert both_faces(events) == [
        (0, 800, 2, [("A", 0, 800), ("B", 100, 200)]),
        (800, 2000, 1, [("A", 800, 2000)]),
    ]


def test_example_06_a_join_cancels_the_reset_timer() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), join("C", 500), leave("C", 600)]
    events.append(leave("A", 700))
    assert both_faces(events) == [
        (0, 700, 2, [("A", 0, 700), ("B", 100, 200), ("C", 500, 600)]),
    ]


def test_example_07_no_leave_is_an_ongoing_session() -> None:
    [session] = sessionize([join("A", 0)], NOW * MICROS)
    assert session.ongoing
    assert session.duration(NOW * MICROS) == NOW * MICROS
    assert both_faces([join("A", 0)]) == [(0, None, 1, [("A", 0, None)])]


def test_example_08_a_reconnect_does_not_break_the_session() -> None:
    events = [join("A", 0), leave("A", 25), join("A", 25), leave("A", 60)]
    assert both_faces(events) == [(0, 60, 1, [("A", 0, 25), ("A", 25, 60)])]


def test_example_09_leaving_at_exactly_30_seconds_makes_a_session() -> None:
    assert both_faces([join("A", 0), leave("A", 30)]) == [(0, 30, 1, [("A", 0, 30)])]


def test_example_10_emptying_as_the_timer_fires_does_not_split() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), leave("A", 800)]
    assert both_faces(events) == [(0, 800, 2, [("A", 0, 800), ("B", 100, 200)])]


def test_example_11_a_join_at_the_timer_instant_cancels_it() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), join("C", 800), leave("C", 900)]
    events.append(leave("A", 1000))
    assert both_faces(events) == [
        (0, 1000, 2, [("A", 0, 1000), ("B", 100, 200), ("C", 800, 900)]),
    ]


def test_example_12_a_leave_at_now_ends_a_presence_not_the_session() -> None:
    events = [join("A", 0), join("B", 100), leave("B", NOW)]
    assert both_faces(events) == [(0, None, 2, [("A", 0, None), ("B", 100, NOW)])]
    events.append(leave("A", NOW))
    assert both_faces(events) == [(0, NOW, 2, [("A", 0, NOW), ("B", 100, NOW)])]


def test_events_after_now_are_not_yet_history() -> None:
    assert both_faces([join("A", 0), leave("A", 45)], now=40) == [(0, None, 1, [("A", 0, None)])]
    assert both_faces([join("A", 0)], now=29) == []


def test_pending_room_has_no_session_until_30_seconds_pass() -> None:
    assert both_faces([join("A", 0)], now=30) == [(0, None, 1, [("A", 0, None)])]


def test_a_timer_firing_at_now_splits_at_now() -> None:
    # The new session begins at that very instant: ongoing, with no record of positive length.
    events = [join("A", 0), join("B", 100), leave("B", 200)]
    assert both_faces(events, now=800) == [
        (0, 800, 2, [("A", 0, 800), ("B", 100, 200)]),
        (800, None, 1, []),
    ]


def test_unbroken_presence_appears_in_every_session_it_spans() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), join("C", 1000), leave("C", 1100)]
    events.append(leave("A", 2000))
    assert both_faces(events) == [
        (0, 800, 2, [("A", 0, 800), ("B", 100, 200)]),
        (800, 1700, 2, [("A", 800, 1700), ("C", 1000, 1100)]),
        (1700, 2000, 1, [("A", 1700, 2000)]),
    ]


def test_a_swap_at_count_one_is_no_change() -> None:
    events = [join("A", 0), leave("A", 20), join("B", 20), leave("B", 40)]
    assert both_faces(events) == [(0, 40, 1, [("A", 0, 20), ("B", 20, 40)])]


def test_user_fields_come_from_the_opening_join() -> None:
    events = [join("A", 0, user_id="u1"), join("A", 5, user_id="u2"), leave("A", 40)]
    [session] = sessionize(events, NOW * MICROS)
    assert session.participants[0].user_id == "u1"


def test_ids_are_deterministic_per_tenant_room_and_start() -> None:
    events = [join("A", 0), leave("A", 45)]
    [first] = sessionize(events, NOW * MICROS, tenant="acme")
    [again] = sessionize(list(reversed(events)), NOW * MICROS, tenant="acme")
    [other] = sessionize(events, NOW * MICROS, tenant="globex")
    assert first.id == again.id == session_id("acme", "r", 0)
    assert other.id != first.id


def test_parameters_are_configurable() -> None:
    rules = Rules.seconds(min_presence=0, solo_start=5, solo_reset=60)
    events = [join("A", 0), join("B", 1), leave("B", 3), leave("A", 100)]
    sessions = [shape(s) for s in reversed(sessionize(events, NOW * MICROS, rules))]
    assert sessions == [
        (0, 63, 2, [("A", 0, 63), ("B", 1, 3)]),
        (63, 100, 1, [("A", 63, 100)]),
    ]


def test_rooms_are_independent_and_listed_newest_first() -> None:
    events = [join("A", 0, room="x"), leave("A", 45, room="x")]
    events += [join("B", 50, room="y"), leave("B", 90, room="y")]
    assert [s.room for s in sessionize(events, NOW * MICROS)] == ["y", "x"]


def test_settle_hands_back_final_sessions_and_forgets_their_events() -> None:
    room = Room("r")
    for event in [join("A", 0), leave("A", 45), join("B", 100), join("C", 110)]:
        room.add(event)
    final = room.settle(105 * MICROS)
    assert [shape(s) for s in final] == [(0, 45, 1, [("A", 0, 45)])]
    assert room.pending_events == 2
    room.add(leave("C", 300))
    assert [shape(s) for s in room.sessions(500 * MICROS)] == [
        (100, None, 2, [("B", 100, None), ("C", 110, 300)]),
    ]


def test_settle_stops_before_a_presence_too_young_to_be_decided() -> None:
    room = Room("r")
    for event in [join("A", 0), join("B", 100)]:
        room.add(event)
    room.settle(105 * MICROS)
    # B joined 5 s before: a leave at 106 would drop it, so the checkpoint stays at 100.
    assert room.checkpoint.at == 100 * MICROS
    room.add(leave("B", 106))
    assert [shape(s) for s in room.sessions(NOW * MICROS)] == [(0, None, 1, [("A", 0, None)])]


def test_an_event_before_the_checkpoint_is_refused() -> None:
    room = Room("r")
    room.add(join("A", 0))
    room.add(leave("A", 45))
    room.settle(100 * MICROS)
    with pytest.raises(LateEvent) as caught:
        room.add(join("B", 50))
    assert caught.value.checkpoint == 100 * MICROS


def test_several_late_events_are_refused_at_the_earliest_of_them() -> None:
    """A rebuild starts at the newest checkpoint at or before the instant `LateEvent` names:
    naming the first late event met instead of the earliest would leave the earlier ones out
    of the rebuild."""
    room = Room("r")
    room.add(join("A", 0))
    room.add(leave("A", 45))
    room.settle(100 * MICROS)
    with pytest.raises(LateEvent) as caught:
        room.extend([stamp(join("B", 80)), stamp(join("C", 50)), stamp(join("D", 120))])
    assert caught.value.at == 50 * MICROS
    ended = RoomEvent("end-1", ROOM_ENDED, "r", 30 * MICROS)
    with pytest.raises(LateEvent) as caught:
        room.check_late([stamp(join("B", 80))], [wide(ended)])
    assert caught.value.at == 30 * MICROS


def test_state_round_trips_through_json() -> None:
    room = Room("r")
    for event in [join("A", 0), join("B", 100), leave("B", 200), join("C", 300)]:
        room.add(event)
    room.settle(250 * MICROS)
    data = json.loads(json.dumps(room.to_dict()))
    resumed = Room.from_dict(data)
    assert resumed.checkpoint == room.checkpoint
    resumed.add(leave("A", 5000))
    room.add(leave("A", 5000))
    assert resumed.sessions(NOW * MICROS) == room.sessions(NOW * MICROS)
    assert Checkpoint.from_dict(room.checkpoint.to_dict()) == room.checkpoint


def test_an_event_for_another_room_is_refused() -> None:
    with pytest.raises(ValueError, match="room 'x'"):
        Room("r").add(join("A", 0, room="x"))


def test_reading_before_the_checkpoint_is_refused() -> None:
    room = Room("r")
    room.add(join("A", 0))
    room.add(leave("A", 45))
    room.settle(100 * MICROS)
    with pytest.raises(ValueError, match="before the room's checkpoint"):
        room.sessions(50 * MICROS)


def test_sessions_are_frozen_values() -> None:
    [session] = sessionize([join("A", 0), leave("A", 45)], NOW * MICROS)
    assert isinstance(session, MeetingSession)
    assert session.duration(NOW * MICROS) == 45 * MICROS


def test_a_session_split_at_now_is_due_again_once_its_records_have_a_length() -> None:
    # Example 5's split, read at the very instant the 10-minute rule fires.
    room = Room("r")
    for event in (join("A", 0), join("B", 0), leave("A", 900)):
        room.add(event)
    split = 1500 * MICROS
    ongoing = room.sessions(split)[-1]
    assert (ongoing.start, ongoing.end, ongoing.participants) == (split, None, ())
    assert room.due == split + 1
    assert [(a.participant_id, a.join) for a in room.sessions(split + 1)[-1].participants] == [
        ("B", split)
    ]


def test_a_read_restarts_where_the_last_visitor_left_even_when_no_visit_counted() -> None:
    """Visits too short to count never start a session, so the machine never goes idle; the
    next read still starts where nobody was left, not from the first event."""
    room = Room("r")
    events = []
    for n in range(5):
        events += [join(f"P{n}", n * 20), leave(f"P{n}", n * 20 + 5)]
    for event in events:
        room.add(event)
    assert room.sessions(100 * MICROS) == []
    room.add(join("Q", 200))
    assert [shape(s) for s in room.sessions(300 * MICROS)] == [(200, None, 1, [("Q", 200, None)])]
    # The second read started from the first read's latest restart point: just after P4 left.
    assert room._marks and room._marks[-1][0].at == 85 * MICROS + 1
    assert [shape(s) for s in room.sessions(300 * MICROS)] == both_faces(
        [*events, join("Q", 200)], 300
    )


def test_an_event_stamped_before_the_last_read_keeps_the_restart_points_before_it() -> None:
    """A read at `now` places its restart points where the room emptied, not at `now`: an
    event that comes afterwards stamped before `now` (the sender's clock behind the
    server's) still replays from just after the last visitor left, not from the start."""
    room = Room("r")
    events = []
    for n in range(40):
        events += [join(f"P{n}", n * 20), leave(f"P{n}", n * 20 + 5)]
    room.extend(stamp(e) for e in events)
    assert room.sessions(1000 * MICROS) == []
    room.sessions(1000 * MICROS)  # places the first read's restart points
    late = [join("Q", 900), leave("Q", 990)]
    room.extend(stamp(e) for e in late)
    assert [shape(s) for s in room.sessions(1000 * MICROS)] == both_faces([*events, *late], 1000)
    # The read started just after P39 left, before Q came, and kept that point.
    assert [m.at for m, _ in room._marks] == [785 * MICROS + 1]


def test_a_settle_starts_from_the_last_reads_restart_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settling after a read replays from where the room was last empty, not from the
    checkpoint: the meeting that ended before it is the read's, already worked out."""
    first = [join("A", 0), join("B", 10), leave("A", 100), leave("B", 110)]
    room = Room("r")
    for event in first:
        room.add(event)
    room.sessions(200 * MICROS)  # the read that finds the room empty after B left
    later = [join("C", 300), join("D", 310)]
    for event in later:
        room.add(event)
    replayed: list[int] = []

    def counted(checkpoint: Checkpoint, events: list[Stamped], *rest: Any) -> Any:
        replayed.append(len(events))
        return replay(checkpoint, events, *rest)

    monkeypatch.setattr("roomlog.domain.engine.replay", counted)
    settled = room.settle(305 * MICROS)
    assert replayed == [1]  # C's join alone: not A's and B's visits
    assert [shape(s) for s in settled] == both_faces(first, 200)
    monkeypatch.undo()
    assert [shape(s) for s in settled + room.sessions(400 * MICROS)] == both_faces(
        [*first, *later], 400
    )


def test_restart_points_where_the_room_was_empty_thin_out_with_age() -> None:
    """One visit after another leaves a restart point each; past `empty_marks` the older half
    keeps every other one, so the newest stay dense and the oldest sparse."""
    room = Room("r")
    room.empty_marks = 8
    events = []
    for n in range(30):
        events += [join(f"P{n}", n * 20), leave(f"P{n}", n * 20 + 5)]
        room.extend(stamp(e) for e in events[-2:])
        room.sessions((n * 20 + 10) * MICROS)
    marks = [m.at or 0 for m, _ in room._marks]
    assert len(marks) <= 8 and marks == sorted(marks)
    # The newest visit's point is there; the oldest kept are further apart than the newest.
    assert marks[-1] == (28 * 20 + 5) * MICROS + 1
    assert marks[1] - marks[0] > marks[-1] - marks[-2]
    # A late event between two old points replays from the one before it.
    late = [join("Q", 35), leave("Q", 38)]
    room.extend(stamp(e) for e in late)
    assert [shape(s) for s in room.sessions(600 * MICROS)] == both_faces([*events, *late], 600)
