"""Daily-compatible reads: `/v1/meetings`, a meeting's participants, who is present now."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from roomlog.api import context
from roomlog.api.errors import (
    ERRORS,
    INVALID_REQUEST,
    NOT_FOUND,
    NOT_FOUND_ERRORS,
    ApiError,
)
from roomlog.api.params import Limit, UnixTime, meeting_filter
from roomlog.domain.events import MICROS, rfc3339
from roomlog.store import queries
from roomlog.store.projects import Project
from roomlog.views.daily import DailyMeeting, DailyParticipant, meeting_object, participant_objects
from roomlog.views.people import PersonAttendance, attendance_objects


class MeetingList(msgspec.Struct):
    total_count: int
    data: list[DailyMeeting]


class ParticipantList(msgspec.Struct):
    data: list[DailyParticipant]


class PresenceItem(msgspec.Struct):
    room: str
    id: str
    userId: str | None  # noqa: N815 - Daily's field names
    userName: str | None  # noqa: N815
    mtgSessionId: str | None  # noqa: N815
    joinTime: str  # noqa: N815
    duration: int


class RoomPresence(msgspec.Struct):
    total_count: int
    data: list[PresenceItem]


def _cursor_error(name: str, value: str) -> ApiError:
    return ApiError(400, INVALID_REQUEST, f"{name}: no meeting {value!r} in this project")


@get(
    "/v1/meetings",
    summary="List meeting sessions, newest first",
    description=(
        "Daily's `/meetings`. `timeframe_start` and `timeframe_end` (unix seconds, or RFC "
        "3339) keep the sessions that started at or after the one and before the other. "
        "`starting_after` "
        "and `ending_before` take a session id from a previous page. `total_count` counts "
        "every session that matches the filters, whatever the cursor."
    ),
    sync_to_thread=False,
    responses=ERRORS,
    tags=["meetings"],
)
def list_meetings(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    room: FromQuery[str | None] = None,
    timeframe_start: UnixTime = None,
    timeframe_end: UnixTime = None,
    limit: Limit = 100,
    starting_after: FromQuery[str | None] = None,
    ending_before: FromQuery[str | None] = None,
    ongoing: FromQuery[bool | None] = None,
    no_participants: FromQuery[bool | None] = None,
) -> MeetingList:
    now = context.clock(request)
    where = meeting_filter(room, timeframe_start, timeframe_end, ongoing)
    with context.database(state).reader.connect() as connection:
        try:
            page = queries.list_meetings(
                connection, project.id, where, limit, starting_after, ending_before
            )
        except queries.UnknownCursor as exc:
            name = "starting_after" if starting_after == exc.args[0] else "ending_before"
            raise _cursor_error(name, exc.args[0]) from None
        total = queries.count_meetings(connection, project.id, where)
    return MeetingList(total, [meeting_object(s, now, not no_participants) for s in page])


@get(
    "/v1/meetings/{meeting:str}",
    summary="One meeting session",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meetings"],
)
def get_meeting(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    meeting: FromPath[str],
) -> DailyMeeting:
    return meeting_object(
        context.meeting(context.database(state), project.id, meeting), context.clock(request), False
    )


@get(
    "/v1/meetings/{meeting:str}/participants",
    summary="The participants of one meeting session",
    description=(
        "One record per unbroken presence, earliest join first. `joined_after` and "
        "`joined_before` take a `participant_id` from this session and keep the records "
        "after (or before) its first one."
    ),
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meetings"],
)
def get_meeting_participants(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    meeting: FromPath[str],
    limit: Limit = 100,
    joined_after: FromQuery[str | None] = None,
    joined_before: FromQuery[str | None] = None,
) -> ParticipantList:
    records = participant_objects(
        context.meeting(context.database(state), project.id, meeting), context.clock(request)
    )
    ids = [r.participant_id for r in records]
    low, high = 0, len(records)
    if joined_after is not None:
        if joined_after not in ids:
            raise ApiError(
                400, INVALID_REQUEST, f"joined_after: no participant {joined_after!r} here"
            )
        low = ids.index(joined_after) + 1
    if joined_before is not None:
        if joined_before not in ids:
            raise ApiError(
                400, INVALID_REQUEST, f"joined_before: no participant {joined_before!r} here"
            )
        high = ids.index(joined_before)
    return ParticipantList(records[low:high][:limit])


class AttendanceList(msgspec.Struct):
    data: list[PersonAttendance]


@get(
    "/v1/meetings/{meeting:str}/attendance",
    summary="Attendance per person in one meeting session",
    description=(
        "One record per person, earliest first join first: a person is the `user_id` the "
        "joins carry (or the `user_name`, if the project's person key says so), else the "
        "`participant_id` alone. `attended` is the union of their "
        "presences in seconds (two devices at once count once; gaps count nothing), `share` "
        "that time's part of the session's duration, and `intervals` the union's spans, "
        "merged where presences touch or overlap. Integer unix seconds, as the meeting."
    ),
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meetings"],
)
def get_meeting_attendance(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    meeting: FromPath[str],
) -> AttendanceList:
    now = context.clock(request)
    session = context.meeting(context.database(state), project.id, meeting)
    return AttendanceList(attendance_objects(session, now, project.person_key))


def _presence_item(present: queries.Present, now: int) -> PresenceItem:
    return PresenceItem(
        room=present.room,
        id=present.participant_id,
        userId=present.user_id,
        userName=present.user_name,
        mtgSessionId=present.session_id,
        joinTime=rfc3339(present.join),
        duration=max(0, now - present.join) // MICROS,
    )


@get(
    "/v1/presence",
    summary="Everyone present now, by room",
    sync_to_thread=False,
    responses=ERRORS,
    tags=["presence"],
)
def get_presence(
    project: NamedDependency[Project], state: State, request: Request[Any, Any, Any]
) -> dict[str, list[PresenceItem]]:
    now = context.clock(request)
    with context.database(state).reader.connect() as connection:
        found = queries.presence(connection, project.id)
    by_room: dict[str, list[PresenceItem]] = {}
    for present in found:
        by_room.setdefault(present.room, []).append(_presence_item(present, now))
    return by_room


@get(
    "/v1/rooms/{room_name:str}/presence",
    summary="Who is in one room now",
    description="A room roomlog has never had an event for answers 404.",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["presence"],
)
def get_room_presence(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    room_name: FromPath[str],
    limit: Limit = 100,
    userId: FromQuery[str | None] = None,  # noqa: N803 - Daily's parameter names
    userName: FromQuery[str | None] = None,  # noqa: N803
) -> RoomPresence:
    now = context.clock(request)
    room_name = unquote(room_name)  # encoded by `roomlog.api.app.room_path`
    with context.database(state).reader.connect() as connection:
        if not queries.room_exists(connection, project.id, room_name):
            raise ApiError(404, NOT_FOUND, f"no room {room_name!r}")
        found = queries.presence(connection, project.id, room_name)
    items = [
        _presence_item(p, now)
        for p in found
        if (userId is None or p.user_id == userId) and (userName is None or p.user_name == userName)
    ]
    return RoomPresence(len(items), items[:limit])


ROUTES: Final = (
    list_meetings,
    get_meeting,
    get_meeting_participants,
    get_meeting_attendance,
    get_presence,
    get_room_presence,
)
