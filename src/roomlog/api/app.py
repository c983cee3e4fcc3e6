"""The HTTP API: ingest, Daily-compatible and VideoSDK-compatible reads. Litestar + msgspec."""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Final, NamedTuple, cast

import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from roomlog import __version__
from roomlog.api import context, exports
from roomlog.api.auth import Authenticator, bearer, daily_project, videosdk_project
from roomlog.api.dashboard import routes as dashboard
from roomlog.api.errors import (
    INVALID_REQUEST,
    NOT_FOUND,
    ApiError,
    ErrorBody,
    error_body,
    on_api_error,
    on_http_error,
    on_unexpected,
    on_validation,
    unexpected,
)
from roomlog.api.params import Limit, UnixTime, meeting_filter
from roomlog.api.receivers import (
    Receivers,
    ingest_jitsi,
    ingest_jitsi_project,
    ingest_provider,
    put_room_presence,
)
from roomlog.api.webhooks import ROUTES as WEBHOOK_ROUTES
from roomlog.domain.events import MICROS, ChatMessage, PresenceEvent, rfc3339
from roomlog.ingest.native import InvalidEvent, NativeEvent, parse_item, to_presence
from roomlog.store import queries
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.projects import Project
from roomlog.store.store import IngestResult, Rejected, Settings, Store, Submission
from roomlog.views.daily import DailyMeeting, DailyParticipant, meeting_object, participant_objects
from roomlog.views.videosdk import (
    MeetingSessionObject,
    PageInfo,
    SessionParticipant,
    session_object,
)
from roomlog.views.videosdk import participants as videosdk_participants
from roomlog.workers.delivery import Deliverer, DeliverySettings
from roomlog.workers.writer import Writer

MAX_BODY: Final = 5 * 1024 * 1024
MAX_EVENTS: Final = 10_000

_ERRORS = {
    400: ResponseSpec(ErrorBody, description="Invalid request or missing Authorization header"),
    401: ResponseSpec(ErrorBody, description="The API key or token is not valid"),
}
_NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No such item in the caller's project")}


def _now() -> int:
    return time.time_ns() // 1000


def _store(state: State) -> Store:
    store: Store = state.store
    return store


# -- ingest -------------------------------------------------------------------------------


class IngestReport(msgspec.Struct):
    """What became of the events of one request."""

    accepted: int
    duplicates: int
    rejected: list[Rejected]


_AT = Schema(
    one_of=[Schema(type=OpenAPIType.NUMBER), Schema(type=OpenAPIType.STRING)],
    description="Unix seconds, or RFC 3339 with an offset",
)
_EVENT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["id", "type", "room", "participant_id", "at"],
    properties={
        "id": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "type": Schema(type=OpenAPIType.STRING, enum=["participant.joined", "participant.left"]),
        "room": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "participant_id": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "at": _AT,
        "user_id": Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)]),
        "user_name": Schema(
            one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)]
        ),
    },
)


_CHAT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "room", "participant_id", "text", "at"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, enum=["chat.message"]),
        "room": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "participant_id": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "text": Schema(type=OpenAPIType.STRING, min_length=1, max_length=16_384),
        "at": _AT,
        "id": Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=256,
            description="Optional: without it, the id is made of the message's content",
        ),
        "user_name": Schema(
            one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)]
        ),
    },
)
_ITEM_SCHEMA = Schema(one_of=[_EVENT_SCHEMA, _CHAT_SCHEMA])


@dataclass
class _EventsOperation(Operation):
    """The body of `POST /v1/events`, which the handler reads raw to judge each item alone."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A native event, a JSON array of them, or NDJSON",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        one_of=[_ITEM_SCHEMA, Schema(type=OpenAPIType.ARRAY, items=_ITEM_SCHEMA)]
                    )
                ),
                "application/x-ndjson": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
            },
        )


_array = msgspec.json.Decoder(list[msgspec.Raw])
_presence_array = msgspec.json.Decoder(list[NativeEvent])
_any = msgspec.json.Decoder()


class ParsedBody(NamedTuple):
    """The valid items of a body, each with its index, and the rejections of the rest."""

    events: list[tuple[int, PresenceEvent]]
    chats: list[tuple[int, ChatMessage]]
    rejected: list[Rejected]


def _parse_body(body: bytes, ndjson: bool) -> ParsedBody:
    parsed = ParsedBody([], [], [])

    def take(index: int, document: bytes | msgspec.Raw) -> None:
        try:
            item = parse_item(document)
        except InvalidEvent as exc:
            parsed.rejected.append(Rejected(index, str(exc)))
            return
        if isinstance(item, ChatMessage):
            parsed.chats.append((index, item))
        else:
            parsed.events.append((index, item))

    if ndjson:
        for index, line in enumerate(body.splitlines()):
            if line.strip():
                take(index, line)
    elif body.lstrip()[:1] == b"[":
        try:
            # Most arrays hold only valid presence events: one decode, in C, for all of them.
            natives = _presence_array.decode(body)
        except msgspec.DecodeError:
            natives = None
        if natives is not None:
            for index, native in enumerate(natives):
                try:
                    parsed.events.append((index, to_presence(native)))
                except InvalidEvent as exc:
                    parsed.rejected.append(Rejected(index, str(exc)))
        else:
            try:
                items = _array.decode(body)
            except msgspec.DecodeError as exc:
                info = f"the body is not valid JSON: {exc}"
                raise ApiError(400, INVALID_REQUEST, info) from None
            for index, raw in enumerate(items):
                take(index, raw)
    else:
        take(0, body)
        if parsed.rejected:  # a single event: its rejection is the request's
            try:
                _any.decode(body)
            except msgspec.DecodeError as exc:
                info = f"the body is not valid JSON: {exc}"
                raise ApiError(400, INVALID_REQUEST, info) from None
            raise ApiError(400, INVALID_REQUEST, parsed.rejected[0].reason)
    if len(parsed.events) + len(parsed.chats) + len(parsed.rejected) > MAX_EVENTS:
        raise ApiError(
            413, "request-too-large", f"at most {MAX_EVENTS} events per request; split the batch"
        )
    return parsed


@post(
    "/v1/events",
    summary="Store presence events",
    description=(
        "One native event (a JSON object: a presence event or a `chat.message`), a JSON "
        "array of them, or NDJSON "
        "(`Content-Type: application/x-ndjson`), at most 5 MiB and 10,000 events. Each event "
        "is committed to the event log before the answer. A repeated `id` with the same "
        "content is counted as a duplicate and changes nothing; the same `id` with other "
        "content is rejected. Valid items of a batch are kept even when others are rejected; "
        "`rejected` lists the others by index (for NDJSON, the 0-based line number)."
    ),
    status_code=200,
    responses={**_ERRORS, 413: ResponseSpec(ErrorBody, description="The body is too large")},
    tags=["events"],
    operation_class=_EventsOperation,
)
async def post_events(
    request: Request[Any, Any, Any], project: NamedDependency[Project]
) -> IngestReport:
    writer: Writer = request.app.state.writer
    content_type = request.headers.get("content-type", "")
    return await receive_events(writer, project, await request.body(), content_type)


async def receive_events(
    writer: Writer, project: Project, body: bytes, content_type: str
) -> IngestReport:
    """Store the events of one `POST /v1/events` body for `project`; what became of them."""
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    parsed = _parse_body(body, media_type in ("application/x-ndjson", "text/plain"))
    result = IngestResult(0, 0, [])
    if parsed.events or parsed.chats:
        result = await writer.submit(Submission(project, parsed.events, chats=parsed.chats))
    rejected = sorted(parsed.rejected + result.rejected, key=lambda r: r.index)
    if rejected and not result.accepted and not result.duplicates:
        first = rejected[0]
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"no event stored; item {first.index}: {first.reason}",
            rejected=msgspec.to_builtins(rejected),
        )
    return IngestReport(result.accepted, result.duplicates, rejected)


# -- Daily-compatible reads -----------------------------------------------------------------


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
        "Daily's `/meetings`. `timeframe_start` and `timeframe_end` (unix seconds) keep the "
        "sessions that started at or after the one and before the other. `starting_after` "
        "and `ending_before` take a session id from a previous page. `total_count` counts "
        "every session that matches the filters, whatever the cursor."
    ),
    sync_to_thread=False,
    responses=_ERRORS,
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
    with context.database(state).engine.connect() as connection:
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
    responses={**_ERRORS, **_NOT_FOUND},
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
    responses={**_ERRORS, **_NOT_FOUND},
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
    responses=_ERRORS,
    tags=["presence"],
)
def get_presence(
    project: NamedDependency[Project], state: State, request: Request[Any, Any, Any]
) -> dict[str, list[PresenceItem]]:
    now = context.clock(request)
    with context.database(state).engine.connect() as connection:
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
    responses={**_ERRORS, **_NOT_FOUND},
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
    with context.database(state).engine.connect() as connection:
        if not queries.room_exists(connection, project.id, room_name):
            raise ApiError(404, NOT_FOUND, f"no room {room_name!r}")
        found = queries.presence(connection, project.id, room_name)
    items = [
        _presence_item(p, now)
        for p in found
        if (userId is None or p.user_id == userId) and (userName is None or p.user_name == userName)
    ]
    return RoomPresence(len(items), items[:limit])


# -- VideoSDK-compatible reads ---------------------------------------------------------------


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
    responses=_ERRORS,
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
    with context.database(state).engine.connect() as connection:
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
    responses={**_ERRORS, **_NOT_FOUND},
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
    with context.database(state).engine.connect() as connection:
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
    responses={**_ERRORS, **_NOT_FOUND},
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
    responses={**_ERRORS, **_NOT_FOUND},
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


class Health(msgspec.Struct):
    status: str
    version: str


@get("/health", summary="Liveness", tags=["service"], sync_to_thread=False)
def health() -> Health:
    return Health("ok", __version__)


# -- the application ------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


class Roomlog(Litestar):
    """The Litestar app, with `POST /v1/events` answered ahead of Litestar's request handling.

    Ingest is the route called thousands of times a second, and Litestar's routing,
    dependency injection and response building cost it more than its own work does
    (docs/PERFORMANCE.md). A request that carries a bearer key and declares a length within
    the limit is answered here, through the same `receive_events` as the declared route.
    Any other (no key or a JWT, a chunked body, a body over the limit) goes on to Litestar,
    whose route answers it; that route also describes the endpoint in `/schema`.
    """

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] == ScopeType.HTTP:
            http = cast("HTTPScope", scope)
            if (
                http["path"] == "/v1/events"
                and http["method"] == "POST"
                and await self._events(http, cast("Receive", receive), cast("Send", send))
            ):
                return
        await super().__call__(scope, receive, send)

    async def _events(self, scope: HTTPScope, receive: Receive, send: Send) -> bool:
        """Answer a `POST /v1/events` it can judge by its headers alone; False for others."""
        key, content_type, length = None, "", -1
        for name, value in scope["headers"]:
            if name == b"authorization":
                key = bearer(value.decode("latin-1").strip())
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        if key is None or not 0 <= length <= MAX_BODY:
            return False
        try:
            project = await self.state.authenticator.key(key)
            body = await _read_body(receive)
            if body is None:
                return True  # the client went away: there is no one to answer
            report = await receive_events(self.state.writer, project, body, content_type)
            status, answer = 200, _encode(report)
        except ApiError as exc:
            status, answer = exc.status, _encode(error_body(exc.error, exc.info, **exc.extra))
        except Exception:
            status, answer = 500, _encode(unexpected("POST", "/v1/events"))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer, "more_body": False})
        return True


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body (the server holds it to its declared length); None if the client
    went away."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(
    database: Database,
    settings: Settings | None = None,
    clock: Callable[[], int] = _now,
    tick: float = 0.25,
    delivery: DeliverySettings | None = None,
    stale_after: int = 0,
    deliver: bool = True,
    chat_link_ttl: int = exports.DEFAULT_LINK_TTL,
) -> Roomlog:
    """The API over `database` (migrated on start), with its writer and webhook threads.

    `stale_after` (µs, 0 for never) closes presences with no event or snapshot for that long.
    Without `deliver`, no thread sends webhooks (a test drives `Deliverer.run_once` instead).
    `chat_link_ttl` is how long (s) a session's `chatLink` works.
    """
    store = Store(database, settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        migrate(database)
        writer = Writer(store, tick=tick, clock=clock, stale_after=stale_after)
        writer.start()
        app.state.writer = writer
        deliverer = Deliverer(database, store.queued, delivery, clock=clock)
        if deliver:
            deliverer.start()
        # Everything built at start lives as long as the process: keep the collector off it,
        # so that full collections stay short (they showed in the read latency's tail).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if deliver:
                deliverer.stop()
            writer.stop()

    daily = {"project": Provide(daily_project)}
    videosdk = {"project": Provide(videosdk_project)}
    daily_routes = (
        post_events,
        list_meetings,
        get_meeting,
        get_meeting_participants,
        get_presence,
        get_room_presence,
        put_room_presence,
        *WEBHOOK_ROUTES,
        *exports.ROUTES,
    )
    videosdk_routes = (
        list_sessions,
        get_session,
        get_session_participants,
        get_session_active_participants,
    )
    for handler in daily_routes:
        handler.dependencies = daily
    for handler in videosdk_routes:
        handler.dependencies = videosdk
    # Provider webhooks and the health check take no API key; a chat link carries its own.
    open_routes = (
        ingest_provider,
        ingest_jitsi,
        ingest_jitsi_project,
        health,
        *exports.OPEN_ROUTES,
    )
    return Roomlog(
        route_handlers=[*daily_routes, *videosdk_routes, *open_routes, dashboard.router()],
        state=State(
            {
                "database": database,
                "store": store,
                "clock": clock,
                "authenticator": Authenticator(database),
                "receivers": Receivers(database),
                "chat_link_ttl": chat_link_ttl,
            }
        ),
        lifespan=[lifespan],
        exception_handlers={
            ApiError: on_api_error,
            ValidationException: on_validation,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        request_max_body_size=MAX_BODY,
        logging_config=None,  # `roomlog serve` configures logging for the whole process
        openapi_config=OpenAPIConfig(
            title="roomlog",
            version=__version__,
            description=(
                "Meeting sessions from presence events, over Daily- and VideoSDK-compatible "
                'APIs. Every error answers Daily\'s shape: `{"error": TYPE, "info": TEXT}`.'
            ),
            path="/schema",
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(type="http", scheme="bearer"),
                }
            ),
            security=[{"bearerAuth": []}],
        ),
    )


def app_from_env() -> Litestar:
    """The app as `roomlog serve` configures it through the environment (for its workers)."""
    logging.basicConfig(
        level=os.environ.get("ROOMLOG_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Reads run in worker threads beside the event loop and the writer: hand the GIL over
    # sooner than the default 5 ms, which otherwise shows in the tail latency.
    sys.setswitchinterval(0.0005)
    settings = Settings(
        late_window=int(float(os.environ.get("ROOMLOG_LATE_WINDOW", "600")) * MICROS),
        max_skew=int(float(os.environ.get("ROOMLOG_MAX_SKEW", "60")) * MICROS),
    )
    delivery = DeliverySettings(
        retry_base=float(os.environ.get("ROOMLOG_WEBHOOK_RETRY_BASE", "60")),
    )
    return create_app(
        open_database(),
        settings,
        tick=float(os.environ.get("ROOMLOG_TICK", "0.25")),
        delivery=delivery,
        stale_after=int(float(os.environ.get("ROOMLOG_STALE_AFTER", "0")) * MICROS),
        chat_link_ttl=int(os.environ.get("ROOMLOG_CHAT_LINK_TTL", exports.DEFAULT_LINK_TTL)),
    )
