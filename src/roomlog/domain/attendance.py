"""Attendance: a session's records folded into one line per participant, as reports show it."""

from __future__ import annotations

from typing import NamedTuple

from roomlog.domain.sessions import MeetingSession


class Attendee(NamedTuple):
    """One participant's time in one session, over all of their presences in it (µs)."""

    participant_id: str
    user_id: str | None
    user_name: str | None
    first_join: int
    last_leave: int | None  # None while still present
    present: int
    presences: int


def attendees(session: MeetingSession, now: int) -> list[Attendee]:
    """One `Attendee` per participant id, earliest first join first; open presences run to
    `now`. A participant's records in one session never overlap (SESSION-RULES step 1), so
    their time present is the sum of their records."""
    folded: dict[str, Attendee] = {}
    for record in sorted(session.participants, key=lambda r: (r.join, r.participant_id)):
        seen = folded.get(record.participant_id)
        length = record.duration(now)
        if seen is None:
            folded[record.participant_id] = Attendee(
                record.participant_id,
                record.user_id,
                record.user_name,
                record.join,
                record.leave,
                length,
                1,
            )
        else:
            last = seen.last_leave
            if record.leave is None or (last is not None and record.leave > last):
                last = record.leave
            folded[record.participant_id] = seen._replace(
                last_leave=last,
                present=seen.present + length,
                presences=seen.presences + 1,
                user_id=seen.user_id or record.user_id,
                user_name=seen.user_name or record.user_name,
            )
    return list(folded.values())


def share(attendee: Attendee, session: MeetingSession, now: int) -> float:
    """The part of the session (0 to 1) during which `attendee` was present."""
    length = session.duration(now)
    return attendee.present / length if length > 0 else 0.0
