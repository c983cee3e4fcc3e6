"""Daily's meeting object (`/v1/meetings`): integer unix seconds, floored, as SESSION-RULES says."""

from __future__ import annotations

from typing import Any

from roomlog.domain.events import MICROS
from roomlog.domain.sessions import MeetingSession


def meeting_object(session: MeetingSession, now: int) -> dict[str, Any]:
    """`session` as Daily's meeting object; ongoing durations are measured up to `now` (µs)."""
    return {
        "id": session.id,
        "room": session.room,
        "start_time": session.start // MICROS,
        "duration": session.duration(now) // MICROS,
        "ongoing": session.ongoing,
        "max_participants": session.max_participants,
        "participants": [
            {
                "user_id": record.user_id,
                "user_name": record.user_name,
                "participant_id": record.participant_id,
                "join_time": record.join // MICROS,
                "duration": record.duration(now) // MICROS,
            }
            for record in session.participants
        ],
    }
