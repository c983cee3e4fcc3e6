"""Daily's meeting object (`/v1/meetings`): integer unix seconds, floored, as SESSION-RULES says."""

from __future__ import annotations

from operator import itemgetter

import msgspec

from roomlog.domain.batch import Ints, Person, SessionTable
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


def meeting_objects(table: SessionTable, first: int, last: int) -> list[DailyMeeting]:
    """`meeting_object` of the sessions `first` to `last` (excluded) of a table, made column by
    column."""

    def participants(people: list[Person], rows: Ints) -> list[DailyParticipant]:
        join = table.join[rows]
        return list(
            map(
                DailyParticipant,
                map(_user_id, people),
                map(_user_name, people),
                map(_participant_id, people),
                (join // MICROS).tolist(),
                ((table.leave[rows] - join) // MICROS).tolist(),
            )
        )

    records = table.per_record(participants, first, last)
    bounds = (table.bounds[first : last + 1] - table.bounds[first]).tolist()
    groups = map(list, map(records.__getitem__, map(slice, bounds[:-1], bounds[1:])))
    start = table.start[first:last]
    return list(
        map(
            DailyMeeting,
            table.ids[first:last],
            table.rooms[first:last],
            (start // MICROS).tolist(),
            ((table.end[first:last] - start) // MICROS).tolist(),
            table.ongoing[first:last].tolist(),
            table.most[first:last].tolist(),
            groups,
        )
    )


_participant_id, _user_id, _user_name = (itemgetter(i) for i in range(3))
