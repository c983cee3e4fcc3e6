"""VideoSDK-compatible reads (v2): `/v2/sessions`, a session's participants, `/v2/rooms`.

Authenticated as VideoSDK's server API is: `Authorization: <JWT>` without a scheme (or a
roomlog key as `Bearer KEY`). A version 2 token with a `roomId` sees that room only: its
other rooms and their sessions answer 404, as if they did not exist.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import unquote

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from roomlog.api import context, exports
from roomlog.api.auth import Caller, videosdk_caller
from roomlog.api.errors import AUTHENTICATION, ERRORS, NOT_FOUND, NOT_FOUND_ERRORS, ApiError
from roomlog.api.videosdk import Page, PerPage
from roomlog.domain.sessions import MeetingSession
from roomlog.store import queries
from roomlog.views.videosdk import PageInfo, SessionParticipant, participants
from roomlog.views.videosdk_v2 import (
    ActiveSession,
    Links,
    RoomV2,
    SessionParticipants,
    SessionV2,
    SessionV2Detail,
    active_session,
    room_v2,
    session_participants,
    session_v2,
    session_v2_detail,
)

_TAGS: Final = ["sessions (VideoSDK v2)"]


class SessionPage(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815 - VideoSDK's field names
    data: list[SessionV2]


class ParticipantsPage(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815
    data: SessionParticipants


class ActivePage(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815
    data: list[ActiveSession]


class RoomPage(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815
    data: list[RoomV2]


def _page_info(page: int, per_page: int, total: int) -> PageInfo:
    return PageInfo(page, per_page, max(1, math.ceil(total / per_page)), total)


def _links(request: Request[Any, Any, Any]) -> Links:
    return Links(context.base_url(request))


def _session(state: State, caller: Caller, session_id: str) -> MeetingSession:
    """The caller's session `session_id`; 404 for one in a room its token does not cover."""
    session = context.meeting(context.database(state), caller.project.id, session_id)
    if caller.room is not None and session.room != caller.room:
        raise ApiError(404, NOT_FOUND, f"no session {session_id!r}")
    return session


def _room_filter(caller: Caller, room_id: str | None, custom_room_id: str | None) -> str | None:
    """The room to list the sessions of: the one asked for, within the token's scope."""
    if room_id is not None and custom_room_id is not None and room_id != custom_room_id:
        raise ApiError(400, "invalid-request-error", "roomId and customRoomId name two rooms")
    asked = room_id if room_id is not None else custom_room_id
    if caller.room is not None and asked is not None and asked != caller.room:
        raise ApiError(
            401, AUTHENTICATION, f"the token is scoped to room {caller.room!r}, not {asked!r}"
        )
    return asked if asked is not None else caller.room


@get(
    ["/v2/sessions", "/v2/sessions/"],
    summary="List sessions (VideoSDK v2), newest first",
    description=(
        "VideoSDK's v2 sessions: of one room (`roomId`, or `customRoomId`, which is the room "
        "name too in roomlog), or of every room of the project when neither is given. A token "
        "scoped to a room lists that room's only."
    ),
    sync_to_thread=False,
    responses=ERRORS,
    tags=_TAGS,
)
def list_sessions_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
    roomId: FromQuery[str | None] = None,  # noqa: N803
    customRoomId: FromQuery[str | None] = None,  # noqa: N803
) -> SessionPage:
    where = queries.MeetingFilter(room=_room_filter(caller, roomId, customRoomId))
    with context.database(state).reader.connect() as connection:
        found = queries.list_meetings(
            connection, caller.project.id, where, perPage, offset=(page - 1) * perPage
        )
        total = queries.count_meetings(connection, caller.project.id, where)
    links = _links(request)
    return SessionPage(_page_info(page, perPage, total), [session_v2(s, links) for s in found])


@get(
    "/v2/sessions/{session_id:str}",
    summary="One session (VideoSDK v2)",
    description="With `activeDuration` and a `chatLink` (null without chat), as in v1.",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=_TAGS,
)
def get_session_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[str],
) -> SessionV2Detail:
    now = context.clock(request)
    session = _session(state, caller, session_id)
    with context.database(state).reader.connect() as connection:
        chatty = queries.with_chat(connection, caller.project.id, [session])
    chat_link = exports.chat_links(request, caller.project, chatty, now).get(session.id)
    return session_v2_detail(session, now, _links(request), chat_link)


def _chunk(people: list[SessionParticipant], page: int, per_page: int) -> list[SessionParticipant]:
    return people[(page - 1) * per_page : page * per_page]


@get(
    "/v2/sessions/{session_id:str}/participants",
    summary="The participants of one session (VideoSDK v2)",
    description="`data` is the session, with one page of its participants.",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=_TAGS,
)
def get_session_participants_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[str],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
) -> ParticipantsPage:
    session = _session(state, caller, session_id)
    people = participants(session.participants)
    data = session_participants(session, _chunk(people, page, perPage), _links(request))
    return ParticipantsPage(_page_info(page, perPage, len(people)), data)


@get(
    "/v2/sessions/{session_id:str}/participants/active",
    summary="The participants present now in one session (VideoSDK v2)",
    description=(
        "`data` holds the session with one page of the participants whose `timelog` is still "
        "open; none once the session has ended."
    ),
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=_TAGS,
)
def get_session_active_participants_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[str],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
) -> ActivePage:
    session = _session(state, caller, session_id)
    active = [p for p in participants(session.participants) if p.timelog[-1].end is None]
    data = active_session(
        session, _chunk(active, page, perPage), caller.project.public_id, _links(request)
    )
    return ActivePage(_page_info(page, perPage, len(active)), [data])


@get(
    ["/v2/rooms", "/v2/rooms/"],
    summary="List rooms (VideoSDK v2), by name",
    description=(
        "The rooms roomlog has events for: `roomId` is the room's name, `createdAt` its first "
        "event and `updatedAt` its latest. A token scoped to a room lists that room only."
    ),
    sync_to_thread=False,
    responses=ERRORS,
    tags=_TAGS,
)
def list_rooms_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
) -> RoomPage:
    links = _links(request)
    with context.database(state).reader.connect() as connection:
        if caller.room is not None:
            one = queries.find_room(connection, caller.project.id, caller.room)
            known = [] if one is None else [one]
            total, found = len(known), known[(page - 1) * perPage : page * perPage]
        else:
            total = queries.count_rooms(connection, caller.project.id)
            found = queries.list_rooms(
                connection, caller.project.id, perPage, offset=(page - 1) * perPage
            )
    return RoomPage(
        _page_info(page, perPage, total),
        [room_v2(r.name, r.first_at, r.latest_at, links) for r in found],
    )


@get(
    "/v2/rooms/{room_id:str}",
    summary="One room (VideoSDK v2)",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=_TAGS,
)
def get_room_v2(
    caller: NamedDependency[Caller],
    state: State,
    request: Request[Any, Any, Any],
    room_id: FromPath[str],
) -> RoomV2:
    room = None
    room_id = unquote(room_id)  # encoded by `roomlog.api.app.room_path`
    if caller.room is None or caller.room == room_id:
        with context.database(state).reader.connect() as connection:
            room = queries.find_room(connection, caller.project.id, room_id)
    if room is None:
        raise ApiError(404, NOT_FOUND, f"no room {room_id!r}")
    return room_v2(room.name, room.first_at, room.latest_at, _links(request))


ROUTES: Final = (
    list_sessions_v2,
    get_session_v2,
    get_session_participants_v2,
    get_session_active_participants_v2,
    list_rooms_v2,
    get_room_v2,
)
DEPENDENCIES: Final = {"caller": Provide(videosdk_caller)}
