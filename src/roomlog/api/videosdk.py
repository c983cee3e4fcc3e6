"""VideoSDK-compatible reads (v1): `/v1/meeting-sessions` and a session's participants."""

from __future__ import annotations

import math
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from roomlog.api import context, exports
from roomlog.api.errors import (
    ERRORS,
    NOT_FOUND_ERRORS,
)
from roomlog.store import queries
from roomlog.store.projects import Project
from roomlog.views.videosdk import (
    MeetingSessionObject,
    PageInfo,
    SessionParticipant,
    session_object,
)
from roomlog.views.videosdk import participants as videosdk_participants


class SessionList(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815 - VideoSDK's field names
    data: list[MeetingSessionObject]


class SessionParticipantList(msgspec.Struct):
    pageInfo: PageInfo  # noqa: N815
    data: list[SessionParticipant]


Page = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="1-based page number")]
PerPage = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100")]


def _page_info(page: int, per_page: int, total: int) -> PageInfo:
    return PageInfo(page, per_page, max(1, math.ceil(total / per_page)), total)


@get(
    "/v1/meeting-sessions",
    summary="List meeting sessions (VideoSDK), newest first",
    description=(
        "VideoSDK's meeting sessions. `meetingId` is the room. `activeDuration` is the number "
        "of seconds during which two or more participants were present."
    ),
    sync_to_thread=False,
    responses=ERRORS,
    tags=["meeting-sessions"],
)
def list_sessions(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
    meetingId: FromQuery[str | None] = None,  # noqa: N803
) -> SessionList:
    now = context.clock(request)
    where = queries.MeetingFilter(room=meetingId)
    with context.database(state).reader.connect() as connection:
        found = queries.list_meetings(
            connection, project.id, where, perPage, offset=(page - 1) * perPage
        )
        total = queries.count_meetings(connection, project.id, where)
        chatty = queries.with_chat(connection, project.id, found)
    links = exports.chat_links(request, project, chatty, now)
    return SessionList(
        _page_info(page, perPage, total), [session_object(s, now, links.get(s.id)) for s in found]
    )


@get(
    "/v1/meeting-sessions/{session_id:str}",
    summary="One meeting session (VideoSDK)",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meeting-sessions"],
)
def get_session(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[str],
) -> MeetingSessionObject:
    now = context.clock(request)
    session = context.meeting(context.database(state), project.id, session_id)
    with context.database(state).reader.connect() as connection:
        chatty = queries.with_chat(connection, project.id, [session])
    return session_object(
        session, now, exports.chat_links(request, project, chatty, now).get(session.id)
    )


def _participant_page(
    people: list[SessionParticipant], page: int, per_page: int
) -> SessionParticipantList:
    chunk = people[(page - 1) * per_page : page * per_page]
    return SessionParticipantList(_page_info(page, per_page, len(people)), chunk)


@get(
    "/v1/meeting-sessions/{session_id:str}/participants",
    summary="The participants of one meeting session (VideoSDK)",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meeting-sessions"],
)
def get_session_participants(
    project: NamedDependency[Project],
    state: State,
    session_id: FromPath[str],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
) -> SessionParticipantList:
    session = context.meeting(context.database(state), project.id, session_id)
    return _participant_page(videosdk_participants(session.participants), page, perPage)


@get(
    "/v1/meeting-sessions/{session_id:str}/participants/active",
    summary="The participants present now in one meeting session (VideoSDK)",
    description="Those with an open `timelog` entry; none once the session has ended.",
    sync_to_thread=False,
    responses={**ERRORS, **NOT_FOUND_ERRORS},
    tags=["meeting-sessions"],
)
def get_session_active_participants(
    project: NamedDependency[Project],
    state: State,
    session_id: FromPath[str],
    page: Page = 1,
    perPage: PerPage = 20,  # noqa: N803
) -> SessionParticipantList:
    session = context.meeting(context.database(state), project.id, session_id)
    active = [p for p in videosdk_participants(session.participants) if p.timelog[-1].end is None]
    return _participant_page(active, page, perPage)


ROUTES: Final = (
    list_sessions,
    get_session,
    get_session_participants,
    get_session_active_participants,
)
