"""Daily's meeting object (`/v1/meetings`): integer unix seconds, floored, as SESSION-RULES says."""

from __future__ import annotations

import msgspec

from roomlog.domain.events import MICROS
from roomlog.domain.sessions import MeetingSession


class DailyParticipant(msgspec.Struct):
    user_id: str | None
    user_name: str | None
    participant_id: str
    join_time: int
    duration: int


class DailyMeeting(msgspec.Struct, omit_defaults=True):
    """Daily's meeting object; `participants` is left out where Daily leaves it out."""

    id: str
    room: str
    start_time: int
    duration: int
    ongoing: bool
    max_participants: int
    participants: list[DailyParticipant] | msgspec.UnsetType = msgspec.UNSET


def participant_objects(session: MeetingSession, now: int) -> list[DailyParticipant]:
    return [
        DailyParticipant(
            record.user_id,
            record.user_name,
            record.participant_id,
            record.join // MICROS,
            ((now if record.leave is None else record.leave) - record.join) // MICROS,
        )
        for record in session.participants
    ]


def meeting_object(
    session: MeetingSession, now: int, with_participants: bool = True
) -> DailyMeeting:
    """`session` as Daily's meeting object; ongoing durations are measured up to `now` (µs)."""
    if not with_participants:
        return DailyMeeting(
            session.id,
            session.room,
            session.start // MICROS,
            session.duration(now) // MICROS,
            session.end is None,
            session.max_participants,
        )
    return DailyMeeting(
        id=session.id,
        room=session.room,
        start_time=session.start // MICROS,
        duration=session.duration(now) // MICROS,
        ongoing=session.end is None,
        max_participants=session.max_participants,
        participants=participant_objects(session, now),
    )
