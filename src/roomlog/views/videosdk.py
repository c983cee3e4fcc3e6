"""VideoSDK's meeting-session object (`/v1/meeting-sessions`): RFC 3339 times with milliseconds.

`activeDuration` is the number of seconds (floored) during which two or more participants
were present in the session, measured up to `now` while it is ongoing.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from roomlog.domain.events import MICROS, rfc3339
from roomlog.domain.sessions import Attendance, MeetingSession


class TimeLog(msgspec.Struct):
    start: str
    end: str | None


class SessionParticipant(msgspec.Struct):
    participantId: str  # noqa: N815 - VideoSDK's field names
    name: str | None
    timelog: list[TimeLog]


class MeetingSessionObject(msgspec.Struct):
    id: str
    meetingId: str  # noqa: N815
    start: str
    end: str | None
    chatLink: str | None  # noqa: N815
    activeDuration: int  # noqa: N815
    participants: list[SessionParticipant]


class PageInfo(msgspec.Struct):
    currentPage: int  # noqa: N815
    perPage: int  # noqa: N815
    lastPage: int  # noqa: N815
    total: int


def active_duration(records: tuple[Attendance, ...], now: int) -> int:
    """Seconds (floored) during which two or more of `records` overlap, up to `now`."""
    changes: defaultdict[int, int] = defaultdict(int)
    for record in records:
        changes[record.join] += 1
        changes[now if record.leave is None else record.leave] -= 1
    total, count, since = 0, 0, 0
    for instant in sorted(changes):
        if count >= 2:
            total += instant - since
        count += changes[instant]
        since = instant
    return total // MICROS


def participants(records: tuple[Attendance, ...]) -> list[SessionParticipant]:
    """One entry per participant id, first join first, with each presence in its timelog."""
    grouped: dict[str, SessionParticipant] = {}
    for record in sorted(records, key=lambda r: (r.join, r.participant_id)):
        entry = grouped.get(record.participant_id)
        if entry is None:
            entry = grouped[record.participant_id] = SessionParticipant(
                record.participant_id, record.user_name, []
            )
        entry.timelog.append(
            TimeLog(rfc3339(record.join), None if record.leave is None else rfc3339(record.leave))
        )
    return list(grouped.values())


def session_object(
    session: MeetingSession, now: int, chat_link: str | None = None
) -> MeetingSessionObject:
    return MeetingSessionObject(
        id=session.id,
        meetingId=session.room,
        start=rfc3339(session.start),
        end=None if session.end is None else rfc3339(session.end),
        chatLink=chat_link,
        activeDuration=active_duration(session.participants, now),
        participants=participants(session.participants),
    )
