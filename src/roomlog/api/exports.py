"""CSV downloads (sessions, attendance, a session's chat) and the signed links to a chat.

Exports stream: rows are read and written a page of sessions at a time, so a download of
the whole history holds one page in memory (attendance per person holds one line per person,
summed as the pages go by). The chat link of VideoSDK's `chatLink` works for
whoever holds it until it expires, like VideoSDK's CDN links: it carries an HS256 token
signed with the project's secret, naming the session, with `exp`; the token's `kid` header
is the project's public id, which says whose secret verifies it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote

import jwt
from anyio import to_thread
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from roomlog.api import context
from roomlog.api.auth import videosdk_project
from roomlog.api.errors import AUTHENTICATION, ApiError, ErrorBody
from roomlog.api.params import UnixTime, meeting_filter
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import MeetingSession
from roomlog.store import queries
from roomlog.store.db import Database
from roomlog.store.projects import Project, project_by_public_id
from roomlog.views.exports import (
    ATTENDANCE_COLUMNS,
    CHAT_COLUMNS,
    PEOPLE_COLUMNS,
    SESSION_COLUMNS,
    attendance_rows,
    chat_rows,
    people_csv,
    render,
    sessions_csv,
)

CHAT_AUDIENCE: Final = "roomlog:chat"
DEFAULT_LINK_TTL: Final = 3600  # seconds

_ERRORS = {
    400: ResponseSpec(ErrorBody, description="Invalid request or missing Authorization header"),
    401: ResponseSpec(ErrorBody, description="The API key, token or link is not valid"),
    404: ResponseSpec(ErrorBody, description="No such session in the caller's project"),
}


def chat_csv(database: Database, project_id: int, session: MeetingSession) -> str:
    with database.reader.connect() as connection:
        messages = queries.chat(connection, project_id, session)
    names = {r.participant_id: r.user_name for r in session.participants}
    return render([CHAT_COLUMNS, *chat_rows(messages, names)])


# -- signed chat links ----------------------------------------------------------------------


def chat_token(project: Project, session_id: str, expires: int) -> str:
    """A token for `session_id`'s chat that expires at `expires` (unix seconds)."""
    claims = {"sub": session_id, "aud": CHAT_AUDIENCE, "exp": expires}
    return jwt.encode(claims, project.secret, algorithm="HS256", headers={"kid": project.public_id})


def chat_link(base_url: str, project: Project, session_id: str, expires: int) -> str:
    path = f"/v1/meeting-sessions/{quote(session_id, safe='')}/chat.csv"
    return f"{base_url.rstrip('/')}{path}?token={chat_token(project, session_id, expires)}"


def chat_links(
    request: Request[Any, Any, Any], project: Project, session_ids: set[str], now: int
) -> dict[str, str]:
    """Links to the chat of each of `session_ids` on the server `request` came to, working
    for the configured time (`chat_link_ttl`) from `now` (µs)."""
    expires = now // MICROS + request.app.state.chat_link_ttl
    base = context.base_url(request)
    return {sid: chat_link(base, project, sid, expires) for sid in session_ids}


def _refused(info: str) -> ApiError:
    return ApiError(401, AUTHENTICATION, info)


def verify_chat_token(database: Database, token: str, session_id: str, now: int) -> Project:
    """The project whose secret signed `token` for `session_id`'s chat, if it has not
    expired at `now` (µs). Expiry is judged by the service's clock, not the host's."""
    try:
        public_id = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise _refused("the chat link's token is not a valid JWT") from None
    if not isinstance(public_id, str):
        raise _refused("the chat link's token names no project")
    with database.reader.connect() as connection:
        project = project_by_public_id(connection, public_id)
    if project is None:
        raise _refused("the chat link's token names no project")
    try:
        claims = jwt.decode(
            token,
            project.secret,
            algorithms=["HS256"],
            audience=CHAT_AUDIENCE,
            options={"verify_exp": False, "require": ["sub", "aud", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise _refused(f"the chat link is not valid: {exc}") from None
    if claims["sub"] != session_id:
        raise _refused("the chat link is for another session")
    expires = claims["exp"]
    if not isinstance(expires, int) or expires * MICROS <= now:
        raise _refused("the chat link has expired; fetch the session again for a new one")
    return project


# -- routes -------------------------------------------------------------------------------


def csv_response(chunks: Iterator[str] | str, filename: str) -> Stream:
    return Stream(
        iter([chunks]) if isinstance(chunks, str) else chunks,
        media_type="text/csv",  # Litestar adds `; charset=utf-8` to text types
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )


@get(
    "/v1/meetings.csv",
    media_type="text/csv",
    summary="Meeting sessions as CSV, newest first",
    description=(
        "The sessions `GET /v1/meetings` lists with the same `room`, `timeframe_start`, "
        "`timeframe_end` and `ongoing` filters, all of them in one streamed CSV: "
        "`" + ",".join(SESSION_COLUMNS) + "`. Times are RFC 3339, durations whole seconds."
    ),
    sync_to_thread=False,
    responses=_ERRORS,
    tags=["exports"],
)
def meetings_csv(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    room: FromQuery[str | None] = None,
    timeframe_start: UnixTime = None,
    timeframe_end: UnixTime = None,
    ongoing: FromQuery[bool | None] = None,
) -> Stream:
    where = meeting_filter(room, timeframe_start, timeframe_end, ongoing)
    pages = queries.meeting_pages(context.database(state), project.id, where)
    chunks = sessions_csv(pages, context.clock(request))
    return csv_response(chunks, "meetings.csv")


@get(
    "/v1/attendance.csv",
    media_type="text/csv",
    summary="Attendance per person over many sessions as CSV",
    description=(
        "The records of `GET /v1/attendance` (the same `room`, `timeframe_start`, "
        "`timeframe_end` and `person`), one row per person by person key: `"
        + ",".join(PEOPLE_COLUMNS)
        + "`. `attended` is whole seconds; times are RFC 3339."
    ),
    sync_to_thread=True,
    responses=_ERRORS,
    tags=["exports"],
)
def people_attendance_csv(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    room: FromQuery[str | None] = None,
    timeframe_start: UnixTime = None,
    timeframe_end: UnixTime = None,
    person: FromQuery[str | None] = None,
) -> Stream:
    where = meeting_filter(room, timeframe_start, timeframe_end, None)
    pages = queries.meeting_pages(context.database(state), project.id, where)
    chunks = people_csv(pages, context.clock(request), person, project.person_key)
    return csv_response(chunks, "attendance.csv")


@get(
    "/v1/meetings/{meeting:str}/attendance.csv",
    media_type="text/csv",
    summary="One meeting session's attendance as CSV",
    description=(
        "One row per participant, earliest first join first: `"
        + ",".join(ATTENDANCE_COLUMNS)
        + "`. `time_present` is the seconds present over all of the participant's presences "
        "in the session; `share_percent` is that time as a share of the session's duration."
    ),
    responses=_ERRORS,
    tags=["exports"],
    sync_to_thread=True,
)
def meeting_attendance_csv(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    meeting: FromPath[str],
) -> Stream:
    session = context.meeting(context.database(state), project.id, meeting)
    rows = attendance_rows(session, context.clock(request))
    return csv_response(render([ATTENDANCE_COLUMNS, *rows]), f"attendance-{session.id}.csv")


@get(
    "/v1/meeting-sessions/{session_id:str}/chat.csv",
    media_type="text/csv",
    summary="One meeting session's chat as CSV (VideoSDK's `chatLink`)",
    description=(
        "`timestamp,participant,name,text`, oldest first. Open to whoever holds a `chatLink` "
        "(its `token` expires); without a token, an API key or VideoSDK-style JWT in "
        "`Authorization` works too. A session's chat is its room's `chat.message` events from "
        "its start up to, not including, its end."
    ),
    responses=_ERRORS,
    tags=["meeting-sessions"],
    security=[{}],
)
async def session_chat_csv(
    state: State,
    request: Request[Any, Any, Any],
    session_id: FromPath[str],
    token: FromQuery[str | None] = None,
) -> Stream:
    database = context.database(state)
    if token is None:
        project = await videosdk_project(request)
    else:
        project = await to_thread.run_sync(
            verify_chat_token, database, token, session_id, context.clock(request)
        )
    session = await to_thread.run_sync(context.meeting, database, project.id, session_id)
    text = await to_thread.run_sync(chat_csv, database, project.id, session)
    return csv_response(text, f"chat-{session.id}.csv")


ROUTES: Final = (meetings_csv, people_attendance_csv, meeting_attendance_csv)
OPEN_ROUTES: Final = (session_chat_csv,)
