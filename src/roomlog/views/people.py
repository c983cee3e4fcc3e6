"""Attendance per person (`/v1/meetings/{id}/attendance`), in Daily's style: integer unix
seconds (floored), as the meeting object gives them."""

from __future__ import annotations

import msgspec

from roomlog.domain.events import MICROS
from roomlog.domain.people import Person, PersonKey, Totals, people
from roomlog.domain.sessions import MeetingSession


class PresenceSpan(msgspec.Struct):
    join_time: int
    leave_time: int | None  # null while still present
    duration: int  # seconds, up to now while still present


class PersonAttendance(msgspec.Struct):
    person: str
    user_id: str | None
    user_name: str | None
    participant_ids: list[str]
    first_join: int
    last_leave: int | None
    attended: int  # seconds present: the union of their presences
    share: float  # of the session's duration, 0 to 1
    intervals: list[PresenceSpan]


def _share(attended: int, session: MeetingSession, now: int) -> float:
    """`attended` (µs) as a part of the session's duration, to four decimals."""
    length = session.duration(now)
    return round(attended / length, 4) if length > 0 else 0.0


def person_object(found: Person, session: MeetingSession, now: int) -> PersonAttendance:
    return PersonAttendance(
        person=found.person,
        user_id=found.user_id,
        user_name=found.user_name,
        participant_ids=list(found.participant_ids),
        first_join=found.first_join // MICROS,
        last_leave=None if found.last_leave is None else found.last_leave // MICROS,
        attended=found.attended // MICROS,
        share=_share(found.attended, session, now),
        intervals=[
            PresenceSpan(
                i.join // MICROS,
                None if i.leave is None else i.leave // MICROS,
                ((now if i.leave is None else i.leave) - i.join) // MICROS,
            )
            for i in found.intervals
        ],
    )


def attendance_objects(
    session: MeetingSession, now: int, by: PersonKey = "user_id"
) -> list[PersonAttendance]:
    """One record per person in `session`, earliest first join first."""
    return [person_object(p, session, now) for p in people(session, now, by)]


class SessionAttended(msgspec.Struct):
    id: str
    room: str
    start_time: int
    attended: int
    share: float


class PersonTotals(msgspec.Struct, omit_defaults=True):
    person: str
    user_id: str | None
    user_name: str | None
    sessions: int
    attended: int  # seconds, summed over the sessions
    first_seen: int
    last_seen: int
    detail: list[SessionAttended] | None = None


def totals_object(found: Totals, now: int, detail: bool) -> PersonTotals:
    sessions = None
    if detail:
        sessions = [
            SessionAttended(
                session.id,
                session.room,
                session.start // MICROS,
                person.attended // MICROS,
                _share(person.attended, session, now),
            )
            for session, person in found.each
        ]
    return PersonTotals(
        person=found.person,
        user_id=found.user_id,
        user_name=found.user_name,
        sessions=found.sessions,
        attended=found.attended // MICROS,
        first_seen=found.first_seen // MICROS,
        last_seen=found.last_seen // MICROS,
        detail=sessions,
    )
