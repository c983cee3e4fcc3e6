"""Why a session began and ended, and attendance per participant, on SESSION-RULES' examples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from roomlog.domain.attendance import attendees, share
from roomlog.domain.batch import sessionize
from roomlog.domain.events import MICROS, PresenceEvent
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.sessions import MeetingSession
from roomlog.domain.timeline import Moment, began, ended, span
from tests.helpers import histories, join, leave

NOW = 10_000 * MICROS


def oldest_first(events: list[PresenceEvent], now: int = NOW) -> list[MeetingSession]:
    return sessionize(events, now)[::-1]


def reasons(events: list[PresenceEvent], now: int = NOW) -> list[tuple[Moment, Moment | None]]:
    found = oldest_first(events, now)
    out = []
    for n, session in enumerate(found):
        previous = found[n - 1].end if n else None
        following = found[n + 1].start if n + 1 < len(found) else None
        out.append(
            (began(session, DEFAULT_RULES, previous), ended(session, DEFAULT_RULES, following))
        )
    return out


def test_alone_for_30_seconds_begins_at_30_seconds_and_ends_when_empty() -> None:
    assert reasons([join("A", 0), leave("A", 45)]) == [
        (
            Moment(30 * MICROS, "one participant was present for 30 s"),
            Moment(45 * MICROS, "the last participant left"),
        )
    ]


def test_a_second_participant_begins_it_at_their_join() -> None:
    events = [join("A", 0), join("B", 20), leave("B", 200), leave("A", 300)]
    [(start, end)] = reasons(events)
    assert start == Moment(20 * MICROS, "a second participant joined")
    assert end == Moment(300 * MICROS, "the last participant left")


def test_a_reconnect_is_not_a_second_participant() -> None:
    events = [join("A", 0), leave("A", 25), join("A", 25), leave("A", 60)]
    [(start, _)] = reasons(events)
    assert start == Moment(30 * MICROS, "one participant was present for 30 s")


def test_a_split_ends_one_session_and_begins_the_next_at_the_same_instant() -> None:
    events = [join("A", 0), join("B", 100), leave("B", 200), leave("A", 2000)]
    (first_start, first_end), (second_start, second_end) = reasons(events)
    assert first_start == Moment(30 * MICROS, "one participant was present for 30 s")
    assert first_end == Moment(800 * MICROS, "one participant was alone for 10 min")
    assert second_start.at == 800 * MICROS
    assert second_start.reason.startswith("split from the previous session")
    assert second_end == Moment(2000 * MICROS, "the last participant left")


def test_an_ongoing_session_has_not_ended() -> None:
    [(_, end)] = reasons([join("A", 0)])
    assert end is None


def test_spans_read_as_people_say_them() -> None:
    assert [span(s * MICROS) for s in (0, 30, 600, 90, 3600, 5400, 3661)] == [
        "0 s",
        "30 s",
        "10 min",
        "1 min 30 s",
        "1 h",
        "1 h 30 min",
        "1 h 1 min 1 s",
    ]
    assert span(Rules.seconds(solo_reset=45).solo_reset) == "45 s"


def test_attendance_folds_a_rejoin_into_one_line() -> None:
    events = [join("A", 0), join("B", 20), leave("B", 100), join("B", 130), leave("B", 250)]
    [session] = sessionize([*events, leave("A", 300)], NOW)
    a, b = attendees(session, NOW)
    assert (a.participant_id, a.present, a.presences) == ("A", 300 * MICROS, 1)
    assert (b.first_join, b.last_leave, b.present, b.presences) == (
        20 * MICROS,
        250 * MICROS,
        200 * MICROS,
        2,
    )
    assert share(b, session, NOW) == 200 / 300


@given(histories(participants="ABC", latest=2400 * MICROS, step=5 * MICROS, most=30))
def test_attendance_adds_up_to_the_records(events: list[PresenceEvent]) -> None:
    for session in sessionize(events, NOW):
        folded = attendees(session, NOW)
        assert sum(a.present for a in folded) == sum(r.duration(NOW) for r in session.participants)
        assert sorted(a.participant_id for a in folded) == sorted(
            {r.participant_id for r in session.participants}
        )
        for attendee in folded:
            assert 0 < share(attendee, session, NOW) <= 1


@given(
    histories(participants="ABC", latest=2400 * MICROS, step=5 * MICROS, most=30),
    st.integers(min_value=0, max_value=3000),
)
def test_a_session_begins_within_solo_start_of_its_start(
    events: list[PresenceEvent], now_s: int
) -> None:
    now = now_s * MICROS
    found = oldest_first(events, now)
    for n, session in enumerate(found):
        previous = found[n - 1].end if n else None
        moment = began(session, DEFAULT_RULES, previous)
        assert session.start <= moment.at <= session.start + DEFAULT_RULES.solo_start
        if moment.reason == "a second participant joined":
            assert session.max_participants >= 2
