"""Attendance per person: the union of a person's presences, against a brute-force count of
the instants they were present."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roomlog.domain.people import Interval, people, person_of, room_totals, united
from roomlog.domain.sessions import Attendance, MeetingSession

NOW = 200


@st.composite
def records(draw: st.DrawFn) -> list[Attendance]:
    """Presences of a few people over a few devices: reconnects in the same instant,
    overlapping tabs, gaps, some still open, some with no user id."""
    found = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        join = draw(st.integers(min_value=0, max_value=NOW - 1))
        leave = draw(st.one_of(st.none(), st.integers(min_value=join + 1, max_value=NOW)))
        device = draw(st.sampled_from(["d1", "d2", "d3", "d4"]))
        user = draw(st.sampled_from([None, "u1", "u2"]))
        found.append(Attendance(device, user, None if user is None else user.upper(), join, leave))
    return found


def session(of: list[Attendance]) -> MeetingSession:
    return MeetingSession("s", "r", min(r.join for r in of), None, len(of), tuple(of))


@given(records())
def test_a_persons_attendance_is_the_instants_any_of_their_presences_covers(
    found: list[Attendance],
) -> None:
    everyone = people(session(found), NOW)
    assert len({p.person for p in everyone}) == len(everyone)
    for person in everyone:
        own = [r for r in found if person_of(r) == person.person]
        covered = {t for r in own for t in range(r.join, NOW if r.leave is None else r.leave)}
        assert person.attended == len(covered)
        # The intervals are the runs of covered instants; the last is open if any presence is.
        runs: list[list[int]] = []
        for t in sorted(covered):
            if runs and runs[-1][1] == t:
                runs[-1][1] = t + 1
            else:
                runs.append([t, t + 1])
        assert [(i.join, NOW if i.leave is None else i.leave) for i in person.intervals] == [
            (a, b) for a, b in runs
        ]
        still = any(r.leave is None for r in own)
        assert (person.intervals[-1].leave is None) == still == (person.last_leave is None)
        assert person.first_join == min(r.join for r in own)
        assert set(person.participant_ids) == {r.participant_id for r in own}
    assert sorted(p.person for p in everyone) == sorted({person_of(r) for r in found})


def test_two_tabs_at_once_count_once_and_a_reconnect_joins_its_halves() -> None:
    both = [
        Attendance("tab-1", "ada", "Ada", 0, 100),
        Attendance("tab-2", "ada", "Ada", 50, 150),
        Attendance("phone", "ada", "Ada", 150, 180),  # a reconnect in the same instant
        Attendance("later", "ada", "Ada", 190, None),
        Attendance("anon", None, None, 10, 20),
    ]
    [ada, anon] = people(session(both), NOW)
    assert ada.person == "ada"
    assert ada.intervals == (Interval(0, 180), Interval(190, None))
    assert ada.attended == 180 + 10
    assert ada.participant_ids == ("tab-1", "tab-2", "phone", "later")
    assert ada.last_leave is None
    assert (anon.person, anon.attended, anon.last_leave) == ("anon", 10, 20)


def test_user_names_can_be_the_key_where_no_user_id_comes() -> None:
    found = [
        Attendance("p1", None, "Ben", 0, 10),
        Attendance("p2", None, "Ben", 20, 30),
        Attendance("p3", None, None, 0, 5),
    ]
    assert [p.person for p in people(session(found), NOW)] == ["p1", "p3", "p2"]
    assert [(p.person, p.attended) for p in people(session(found), NOW, by="user_name")] == [
        ("Ben", 20),
        ("p3", 5),
    ]


def test_the_union_merges_touching_and_overlapping_presences() -> None:
    assert united([Interval(5, 9), Interval(0, 5), Interval(20, None), Interval(25, 30)]) == [
        Interval(0, 9),
        Interval(20, None),
    ]


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3"]), records()), max_size=6))
def test_a_rooms_totals_are_its_sessions_and_their_peoples_attendance(
    drawn: list[tuple[str, list[Attendance]]],
) -> None:
    sessions = [
        MeetingSession(f"s{n}", room, min(r.join for r in of), None, len(of), tuple(of))
        for n, (room, of) in enumerate(drawn)
    ]
    found = room_totals([sessions[:2], sessions[2:]], NOW)
    assert [r.room for r in found] == sorted(
        {s.room for s in sessions},
        key=lambda room: (-max(s.start for s in sessions if s.room == room), room),
    )
    for room in found:
        own = [s for s in sessions if s.room == room.room]
        assert room.sessions == len(own)
        assert room.people == {person_of(r) for s in own for r in s.participants}
        # Each session's people, their instants counted one by one.
        assert room.attended == sum(
            len(
                {
                    t
                    for r in s.participants
                    if person_of(r) == key
                    for t in range(r.join, NOW if r.leave is None else r.leave)
                }
            )
            for s in own
            for key in {person_of(r) for r in s.participants}
        )
