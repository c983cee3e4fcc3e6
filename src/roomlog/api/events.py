"""`POST /v1/events`: native events, one object, a JSON array or NDJSON, into the event log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, NamedTuple

import msgspec
from litestar import Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import QueryParameter

from roomlog import metrics
from roomlog.api.applied import WAIT_VALUES, wants_wait
from roomlog.api.errors import (
    ERRORS,
    INVALID_REQUEST,
    ApiError,
    ErrorBody,
)
from roomlog.domain.events import ChatMessage, PresenceEvent, RoomEvent
from roomlog.ingest.native import (
    BOM,
    UNREADABLE,
    InvalidEvent,
    NativeEvent,
    parse_item,
    to_presences,
    unreadable,
)
from roomlog.store.projects import Project
from roomlog.store.writes import IngestResult, Rejected, Submission
from roomlog.workers.writer import Writer

MAX_BODY: Final = 5 * 1024 * 1024
MAX_EVENTS: Final = 10_000


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
_NULLABLE_TEXT = Schema(one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)])
_ROOM_EVENT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["id", "type", "room", "at"],
    description=(
        "A room end (every presence open at `at` ends there) or a snapshot (those present "
        "and not in `participants` leave at `at`, those listed and absent join): events of "
        "the room's history, whatever order they arrive in (SESSION-RULES step 1b)"
    ),
    properties={
        "id": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "type": Schema(type=OpenAPIType.STRING, enum=["room.ended", "room.snapshot"]),
        "room": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256),
        "at": _AT,
        "participants": Schema(
            type=OpenAPIType.ARRAY,
            description="`room.snapshot` only: everyone in the room at `at`",
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["participant_id"],
                properties={
                    "participant_id": Schema(type=OpenAPIType.STRING, min_length=1),
                    "user_id": _NULLABLE_TEXT,
                    "user_name": _NULLABLE_TEXT,
                },
            ),
        ),
    },
)
_ITEM_SCHEMA = Schema(one_of=[_EVENT_SCHEMA, _CHAT_SCHEMA, _ROOM_EVENT_SCHEMA])


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


Wait = Annotated[
    str | None,
    QueryParameter(
        description=(
            "`applied`: answer once the events are applied to the sessions; `logged` (the "
            "usual default): once they are committed to the event log"
        ),
        pattern="^(applied|logged)$",
    ),
]

_array = msgspec.json.Decoder(list[msgspec.Raw])
_presence_array = msgspec.json.Decoder(list[NativeEvent])
_any = msgspec.json.Decoder()


class ParsedBody(NamedTuple):
    """The valid items of a body, each with its index, and the rejections of the rest."""

    events: list[tuple[int, PresenceEvent]]
    chats: list[tuple[int, ChatMessage]]
    rejected: list[Rejected]
    room_events: list[tuple[int, RoomEvent]]


def _parse_body(body: bytes, ndjson: bool) -> ParsedBody:
    parsed = ParsedBody([], [], [], [])

    def take(index: int, document: bytes | msgspec.Raw) -> None:
        try:
            item = parse_item(document)
        except InvalidEvent as exc:
            parsed.rejected.append(Rejected(index, str(exc)))
            return
        if isinstance(item, ChatMessage):
            parsed.chats.append((index, item))
        elif isinstance(item, RoomEvent):
            parsed.room_events.append((index, item))
        else:
            parsed.events.append((index, item))

    if body[:3] == BOM:
        body = body[3:]
    if ndjson:
        for index, line in enumerate(body.splitlines()):
            if line.strip():
                take(index, line)
    elif body.lstrip()[:1] == b"[":
        try:
            # Most arrays hold only valid presence events: one decode, in C, for all of them.
            natives = _presence_array.decode(body)
        except (msgspec.DecodeError, *UNREADABLE):
            natives = None
        if natives is not None:
            made, invalid = to_presences(natives)
            parsed.events.extend(made)
            parsed.rejected.extend(Rejected(index, reason) for index, reason in invalid)
        else:
            try:
                items = _array.decode(body)
            except (msgspec.DecodeError, *UNREADABLE) as exc:
                raise ApiError(400, INVALID_REQUEST, not_json(body, exc)) from None
            for index, raw in enumerate(items):
                take(index, raw)
    else:
        take(0, body)
        if parsed.rejected:  # a single event: its rejection is the request's
            try:
                _any.decode(body)
            except (msgspec.DecodeError, *UNREADABLE) as exc:
                raise ApiError(400, INVALID_REQUEST, not_json(body, exc)) from None
            raise ApiError(400, INVALID_REQUEST, parsed.rejected[0].reason)
    taken = len(parsed.events) + len(parsed.chats) + len(parsed.room_events)
    if taken + len(parsed.rejected) > MAX_EVENTS:
        raise ApiError(
            413, "request-too-large", f"at most {MAX_EVENTS} events per request; split the batch"
        )
    return parsed


def not_json(body: bytes, exc: Exception) -> str:
    """Why `body` is not one JSON document, with what to do about it."""
    if isinstance(exc, msgspec.DecodeError) and body.strip().count(b"\n") >= 1:
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        if len(lines) > 1 and all(line[:1] == b"{" for line in lines[:3]):
            return (
                "the body looks like NDJSON (one event per line): send it with"
                " `Content-Type: application/x-ndjson`, or send a JSON array"
            )
    if isinstance(exc, msgspec.DecodeError):
        return f"the body is not valid JSON: {exc}"
    return f"the body is unreadable: {unreadable(exc)}"


NDJSON_TYPES: Final = ("application/x-ndjson", "application/ndjson", "text/plain")


@post(
    "/v1/events",
    summary="Store presence events",
    description=(
        "One native event (a JSON object: a presence event, a `chat.message`, a room end "
        "`room.ended` or a snapshot `room.snapshot`), a JSON array of them, or NDJSON "
        "(`Content-Type: application/x-ndjson`), at most 5 MiB and 10,000 events. Each event "
        "is committed to the event log before the answer. A repeated `id` with the same "
        "content is counted as a duplicate and changes nothing; the same `id` with other "
        "content is rejected. Valid items of a batch are kept even when others are rejected; "
        "`rejected` lists the others by index (for NDJSON, the 0-based line number). The "
        "events are applied to their rooms' sessions behind the log, within about a second; "
        "`wait=applied` answers only once they are (the server's `--wait` sets the default)."
    ),
    status_code=200,
    responses={**ERRORS, 413: ResponseSpec(ErrorBody, description="The body is too large")},
    tags=["events"],
    operation_class=_EventsOperation,
)
async def post_events(
    request: Request[Any, Any, Any],
    project: NamedDependency[Project],
    wait: Wait = None,
) -> IngestReport:
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    return await receive_events(request.app.state, project, body, content_type, wait)


async def receive_events(
    state: State, project: Project, body: bytes, content_type: str, wait: str | None = None
) -> IngestReport:
    """Store the events of one `POST /v1/events` body for `project`; what became of them."""
    if wait not in (None, *WAIT_VALUES):
        raise ApiError(400, INVALID_REQUEST, f"wait: {wait!r} is not `applied` or `logged`")
    writer: Writer = state.writer
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    parsed = _parse_body(body, media_type in NDJSON_TYPES)
    result = IngestResult(0, 0, [])
    if parsed.events or parsed.chats or parsed.room_events:
        result = await writer.submit(
            Submission(
                project,
                parsed.events,
                chats=parsed.chats,
                room_events=parsed.room_events,
                apply_now=wants_wait(state, wait),
            )
        )
    rejected = sorted(parsed.rejected + result.rejected, key=lambda r: r.index)
    metrics.count_events("native", result.accepted, result.duplicates, len(rejected))
    if rejected and not result.accepted and not result.duplicates:
        first = rejected[0]
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"no event stored; item {first.index}: {first.reason}",
            rejected=msgspec.to_builtins(rejected),
        )
    return IngestReport(result.accepted, result.duplicates, rejected)
