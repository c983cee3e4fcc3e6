"""Provider webhooks in (`/v1/ingest/<provider>`) and room snapshots (`PUT .../presence`).

A provider request names its project with `?project=NAME` (default `default`); Jitsi's
component appends its own paths, so it names the project in the path instead. The project's
credentials for that provider verify the request before anything is read from it. A verified
request is answered 200 with what became of it, even when an item was refused, since the
provider could not send it any better by retrying.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Final
from urllib.parse import unquote

import msgspec
from anyio import to_thread
from litestar import Request, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, FromQuery

from roomlog import metrics
from roomlog.api import access, context
from roomlog.api.applied import wants_wait
from roomlog.api.errors import AUTHENTICATION, INVALID_REQUEST, NOT_FOUND, ApiError, ErrorBody
from roomlog.domain.events import InvalidTime, micros_from_at
from roomlog.ingest.native import MAX_NAME, MAX_USER_FIELD
from roomlog.ingest.webhook import Forged, Inbound, Mapped, Snapshot, Unreadable, checked
from roomlog.store.db import Database
from roomlog.store.projects import DEFAULT_PROJECT, Project, find_project
from roomlog.store.providers import PROVIDERS, credentials
from roomlog.store.writes import IngestResult, Rejected, Submission, too_far
from roomlog.workers.writer import Writer

log = logging.getLogger("roomlog.receivers")

CACHE_SECONDS: Final = 5.0
MAX_SNAPSHOT: Final = 10_000


class ProviderReport(msgspec.Struct):
    """What became of one provider request."""

    accepted: int
    duplicates: int
    rejected: list[Rejected]
    ignored: str | None = None
    changed: int = 0  # the joins and leaves a room end made, as the room stood


class Receivers:
    """Projects and their provider credentials, remembered for a few seconds per process."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: dict[tuple[str, str], tuple[Project | None, dict[str, str] | None, float]] = {}

    def _lookup(self, project: str, provider: str) -> tuple[Project | None, dict[str, str] | None]:
        with self.database.reader.connect() as connection:
            found = find_project(connection, project)
            if found is None:
                return None, None
            return found, credentials(connection, found.id, provider)

    async def find(self, project: str, provider: str) -> tuple[Project, dict[str, str]]:
        key = (project, provider)
        cached = self._known.get(key)
        if cached is None or cached[2] <= time.monotonic():
            found, creds = await to_thread.run_sync(self._lookup, project, provider)
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (found, creds, time.monotonic() + CACHE_SECONDS)
        else:
            found, creds, _ = cached
        if found is not None:
            access.name_project(found.name)
        if found is None or creds is None:
            raise ApiError(
                401,
                AUTHENTICATION,
                f"project {project!r} has no {provider} credentials; set them with"
                f" `roomlog providers set {provider} --project {project} ...`",
            )
        return found, creds


_RESPONSES = {
    400: ResponseSpec(ErrorBody, description="A verified request roomlog cannot read"),
    401: ResponseSpec(ErrorBody, description="A missing or forged signature; nothing stored"),
    404: ResponseSpec(ErrorBody, description="No such provider"),
}


async def _receive(
    request: Request[Any, Any, Any], provider: str, project_name: str
) -> ProviderReport:
    chosen = PROVIDERS.get(provider)
    if chosen is None:
        raise ApiError(
            404, NOT_FOUND, f"no provider {provider!r}; roomlog receives {', '.join(PROVIDERS)}"
        )
    inbound = Inbound(
        body=await request.body(),
        headers={k.lower(): v for k, v in request.headers.items()},
        url=context.public_url(request),
        received_at=context.clock(request),
    )
    checking = chosen.probe(inbound) if chosen.probe is not None else None
    if checking is not None:
        return ProviderReport(0, 0, [], checking)
    receivers: Receivers = request.app.state.receivers
    project, creds = await receivers.find(project_name, provider)
    try:
        mapped = checked(chosen.receive(inbound, creds))
    except Forged as exc:
        log.info("refused a %s webhook for project %r: %s", provider, project_name, exc)
        raise ApiError(401, AUTHENTICATION, str(exc)) from None
    except Unreadable as exc:
        raise ApiError(400, INVALID_REQUEST, str(exc)) from None
    return await _store(request, project, mapped, provider)


async def _store(
    request: Request[Any, Any, Any], project: Project, mapped: Mapped, provider: str
) -> ProviderReport:
    if mapped.ignored is not None:
        return ProviderReport(0, 0, [], mapped.ignored)
    writer: Writer = request.app.state.writer
    result = await writer.submit(
        Submission(
            project,
            [(0, e) for e in mapped.events],
            room_ends=[(0, end) for end in mapped.room_ends],
            id_is_identity=True,
            apply_now=wants_wait(request.app.state, request.query_params.get("wait")),
        )
    )
    for rejected in result.rejected:
        log.info("a provider event for project %r was refused: %s", project.name, rejected.reason)
    metrics.count_events(provider, result.accepted, result.duplicates, len(result.rejected))
    return ProviderReport(result.accepted, result.duplicates, result.rejected, None, result.changed)


_DESCRIPTION: Final = (
    "A webhook from a media server, verified with the project's credentials for that provider "
    "(`roomlog providers set`). Providers: " + ", ".join(f"`{p}`" for p in PROVIDERS) + "."
)


@post(
    "/v1/ingest/{provider:str}",
    summary="Receive a provider's webhook",
    description=_DESCRIPTION,
    status_code=200,
    responses=_RESPONSES,
    tags=["providers"],
    security=[],
)
async def ingest_provider(
    request: Request[Any, Any, Any],
    provider: FromPath[str],
    project: FromQuery[str] = DEFAULT_PROJECT,
) -> ProviderReport:
    return await _receive(request, provider, project)


@post(
    "/v1/ingest/jitsi/events/{kind:str}/{what:str}",
    summary="Receive a Jitsi event_sync post (project `default`)",
    description="Set the component's `api_prefix` to `<roomlog>/v1/ingest/jitsi`.",
    status_code=200,
    responses=_RESPONSES,
    tags=["providers"],
    security=[],
)
async def ingest_jitsi(
    request: Request[Any, Any, Any], kind: FromPath[str], what: FromPath[str]
) -> ProviderReport:
    return await _receive(request, "jitsi", DEFAULT_PROJECT)


@post(
    "/v1/ingest/jitsi/{project_name:str}/events/{kind:str}/{what:str}",
    summary="Receive a Jitsi event_sync post for a named project",
    description="Set the component's `api_prefix` to `<roomlog>/v1/ingest/jitsi/<project>`.",
    status_code=200,
    responses=_RESPONSES,
    tags=["providers"],
    security=[],
)
async def ingest_jitsi_project(
    request: Request[Any, Any, Any],
    project_name: FromPath[str],
    kind: FromPath[str],
    what: FromPath[str],
) -> ProviderReport:
    return await _receive(request, "jitsi", project_name)


# -- snapshots -------------------------------------------------------------------------------

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
UserField = Annotated[str, msgspec.Meta(max_length=MAX_USER_FIELD)]


class Present(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: Name
    user_id: UserField | None = None
    user_name: UserField | None = None


class RoomSnapshot(msgspec.Struct, forbid_unknown_fields=True):
    """Everyone in the room now, as the media server sees it."""

    participants: Annotated[list[Present], msgspec.Meta(max_length=MAX_SNAPSHOT)]
    at: int | float | str | None = None


class SnapshotReport(msgspec.Struct):
    accepted: int  # 1: a new snapshot; 0: this snapshot was already stored
    duplicates: int
    changed: int  # how many joins and leaves it made, as the room stood


@put(
    "/v1/rooms/{room_name:str}/presence",
    summary="Set who is in a room now (a snapshot from the media server)",
    description=(
        "Presences not in `participants` end at `at` (default: now); participants missing "
        "from roomlog's presence begin then. The snapshot is an event of the room's history "
        "(SESSION-RULES step 1b): a join stamped before `at` that arrives later is closed by "
        "it all the same. Everyone listed counts as seen at `at` for the stale-presence "
        "timeout. `accepted` is 1 for a new snapshot (`duplicates` 1 for one already stored); "
        "`changed` counts the joins and leaves it made."
    ),
    status_code=200,
    responses={400: ResponseSpec(ErrorBody, description="An invalid snapshot")},
    tags=["presence"],
)
async def put_room_presence(
    request: Request[Any, Any, Any],
    project: NamedDependency[Project],
    room_name: FromPath[str],
    data: Annotated[RoomSnapshot, Body(title="RoomSnapshot")],
) -> SnapshotReport:
    room_name = unquote(room_name)
    if not 1 <= len(room_name) <= MAX_NAME:
        raise ApiError(400, INVALID_REQUEST, f"a room name has 1 to {MAX_NAME} characters")
    ids = [p.participant_id for p in data.participants]
    if len(set(ids)) != len(ids):
        raise ApiError(400, INVALID_REQUEST, "`participants` lists a participant_id twice")
    now = context.clock(request)
    try:
        at = now if data.at is None else micros_from_at(data.at)
    except InvalidTime as exc:
        raise ApiError(400, INVALID_REQUEST, f"at: {exc}") from None
    settings = request.app.state.store.settings
    if at > now + settings.max_skew:
        raise ApiError(
            400, INVALID_REQUEST, too_far(0, "`at`", now + settings.max_skew, now).reason
        )
    people = tuple((p.participant_id, p.user_id, p.user_name) for p in data.participants)
    writer: Writer = request.app.state.writer
    result: IngestResult = await writer.submit(
        Submission(project, [], snapshots=[(0, Snapshot(room_name, at, people))])
    )
    if result.rejected:
        raise ApiError(400, INVALID_REQUEST, result.rejected[0].reason)
    metrics.count_events("native", result.accepted, result.duplicates, len(result.rejected))
    return SnapshotReport(result.accepted, result.duplicates, result.changed)


# The provider webhooks: each verified with its provider's credentials, not an API key.
ROUTES: Final = (ingest_provider, ingest_jitsi, ingest_jitsi_project)
