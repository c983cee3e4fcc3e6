"""The application: its routes, state, lifespan and OpenAPI document, assembled."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, cast
from urllib.parse import parse_qs, quote, unquote_to_bytes

import msgspec
from litestar import Litestar, get
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import (
    Components,
    SecurityScheme,
)
from litestar.types import (
    ControllerRouterHandler,
    ExceptionHandlersMap,
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from roomlog import __version__, logs, metrics
from roomlog.api import (
    access,
    attendance,
    exports,
    meetings,
    operations,
    receivers,
    videosdk,
    videosdk_v2,
    webhooks,
)
from roomlog.api.applied import HEADER, applied_header, header_value
from roomlog.api.auth import Authenticator, bearer, daily_project, videosdk_project
from roomlog.api.dashboard import routes as dashboard
from roomlog.api.errors import (
    INVALID_REQUEST,
    ApiError,
    error_body,
    on_api_error,
    on_http_error,
    on_unexpected,
    on_unreadable,
    on_validation,
    unexpected,
)
from roomlog.api.events import MAX_BODY, post_events, receive_events
from roomlog.api.operations import Workings
from roomlog.api.receivers import Receivers, put_room_presence
from roomlog.domain.events import MICROS
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.retention import DAY
from roomlog.store.store import Store
from roomlog.store.writes import Settings
from roomlog.workers import collector
from roomlog.workers.applier import Applier, run_process
from roomlog.workers.delivery import Deliverer, DeliverySettings
from roomlog.workers.pruner import Pruner
from roomlog.workers.signals import pipe
from roomlog.workers.vacuumer import Vacuumer
from roomlog.workers.writer import Writer

log = logging.getLogger("roomlog.server")


def _now() -> int:
    return time.time_ns() // 1000


class Health(msgspec.Struct):
    status: str
    version: str


@get("/health", summary="Liveness", tags=["service"], sync_to_thread=False, security=[])
def health() -> Health:
    return Health("ok", __version__)


# -- the application ------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


# Routes whose one path parameter is a room's name, which may hold `/` (Jitsi names breakout
# rooms `<room>/<breakout>`): (prefix, suffix) around it.
_ROOM_ROUTES: Final = (("/v1/rooms/", "/presence"), ("/v2/rooms/", ""))


def room_path(path: str) -> str:
    """`path` with the room name of a room route percent-encoded into one segment (its
    handler decodes it with `unquote`), so that any name, `/` included, reaches its route.
    Other paths are returned as they are."""
    for head, tail in _ROOM_ROUTES:
        if path.startswith(head) and path.endswith(tail) and len(path) > len(head) + len(tail):
            return head + quote(path[len(head) : len(path) - len(tail)], safe="") + tail
    return path


def _refusal(scope: HTTPScope) -> str | None:
    """Why a request's path or query string cannot be read, or None."""
    if "\x00" in scope["path"]:
        return "the path contains U+0000 (NUL): no id or name in roomlog holds one"
    query = scope.get("query_string", b"")
    if query:
        try:
            text = unquote_to_bytes(query.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            return "the query string is not UTF-8 once percent-decoded: encode it as UTF-8"
        if "\x00" in text:
            return "the query string contains U+0000 (%00): no parameter takes one"
    return None


_THROUGH: Final = HEADER.lower().encode()


async def _answer(
    send: Send, entry: access.Access, status: int, answer: bytes, through: bytes | None = None
) -> None:
    """Send a JSON answer the app built itself, noted in the request's log line as
    `access.sender` notes Litestar's."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(answer)),
        (access.HEADER, entry.id.encode()),
    ]
    if through is not None:
        headers.append((_THROUGH, through))
    entry.status, entry.bytes_out = status, len(answer)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer, "more_body": False})


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
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        http = cast("HTTPScope", scope)
        started = time.perf_counter()
        entry = access.begin(http)
        try:
            await self._http(http, cast("Receive", receive), cast("Send", send), entry)
        finally:
            access.finish(entry, http, started, self.state.access_log)

    async def _http(
        self, scope: HTTPScope, receive: Receive, send: Send, entry: access.Access
    ) -> None:
        refusal = _refusal(scope)
        if refusal is not None:
            entry.route = access.UNMATCHED
            await _answer(send, entry, 400, _encode(error_body(INVALID_REQUEST, refusal)))
            return
        scope["path"] = room_path(scope["path"])
        if scope["path"] == "/v1/events" and scope["method"] == "POST":
            entry.route = "/v1/events"
            if await self._events(scope, receive, send, entry):
                return
        await super().__call__(scope, receive, access.sender(entry, send))

    async def _events(
        self, scope: HTTPScope, receive: Receive, send: Send, entry: access.Access
    ) -> bool:
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
            raw = scope.get("query_string", b"")
            query = parse_qs(raw.decode("latin-1")) if raw else {}
            wait = query["wait"][0] if "wait" in query else None
            report = await receive_events(self.state, project, body, content_type, wait)
            status, answer = 200, _encode(report)
        except ApiError as exc:
            status, answer = exc.status, _encode(error_body(exc.error, exc.info, **exc.extra))
        except Exception:
            status, answer = 500, _encode(unexpected("POST", "/v1/events"))
        await _answer(send, entry, status, answer, header_value(self.state))
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


# Every error answers in Daily's shape.
_EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ApiError: on_api_error,
    ValidationException: on_validation,
    HTTPException: on_http_error,
    UnicodeDecodeError: on_unreadable,
    RecursionError: on_unreadable,
    Exception: on_unexpected,
}


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="roomlog",
        version=__version__,
        description=(
            "Meeting sessions from presence events, over Daily- and VideoSDK-compatible "
            'APIs. Every error answers Daily\'s shape: `{"error": TYPE, "info": TEXT}`.'
        ),
        path="/schema",
        components=Components(
            security_schemes={"bearerAuth": SecurityScheme(type="http", scheme="bearer")}
        ),
        security=[{"bearerAuth": []}],
    )


def _open_routes() -> tuple[HTTPRouteHandler, ...]:
    return (*receivers.ROUTES, health, *operations.ROUTES, *exports.OPEN_ROUTES)


def _open_in_openapi(app: Litestar) -> None:
    """Say in the OpenAPI document that the open routes take no key (Litestar leaves an
    empty `security` out, so they would inherit the document's)."""
    document = app.plugins.get(OpenAPIPlugin).provide_openapi()
    for handler in _open_routes():
        for path in handler.paths:
            item = (document.paths or {}).get(re.sub(r":[^}]+}", "}", path))
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is not None:
                    operation.security = []


def _routes() -> list[ControllerRouterHandler]:
    """Every route, each group with the authentication its clients use."""
    daily_auth = {"project": Provide(daily_project)}
    videosdk_auth = {"project": Provide(videosdk_project)}
    daily_routes = (
        post_events,
        *meetings.ROUTES,
        *attendance.ROUTES,
        put_room_presence,
        *webhooks.ROUTES,
        *exports.ROUTES,
    )
    for handler in daily_routes:
        handler.dependencies = daily_auth
    for handler in videosdk.ROUTES:
        handler.dependencies = videosdk_auth
    for handler in videosdk_v2.ROUTES:
        handler.dependencies = dict(videosdk_v2.DEPENDENCIES)
    # Provider webhooks and the health check take no API key; a chat link carries its own.
    open_routes = _open_routes()
    return [
        *daily_routes,
        *videosdk.ROUTES,
        *videosdk_v2.ROUTES,
        *open_routes,
        dashboard.router(),
    ]


def _workers(
    store: Store,
    clock: Callable[[], int],
    tick: float,
    stale_after: int,
    deliverer: Deliverer | None,
    appliers: str,
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The lifespan: migrate, then run the applier (a thread, or `appliers="process"`: a
    process of its own, watched by a thread for the applied-through header), the writer and
    the webhook deliverer beside the app."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        migrate(store.database)
        workings: Workings = app.state.workings
        child: multiprocessing.process.BaseProcess | None = None
        if appliers == "process":
            spawn = multiprocessing.get_context("spawn")
            (stop_in, stop), (wake_in, wake), (applied, applied_out) = pipe(), pipe(), pipe()
            workings.beat = spawn.Value("d", 0.0, lock=False)
            child = spawn.Process(
                target=run_process,
                args=(
                    store.database.url,
                    store.settings,
                    tick,
                    stale_after,
                    stop_in,
                    wake_in,
                    applied_out,
                    workings.beat,
                ),
                name="roomlog-applier",
                daemon=True,
            )
            child.start()
            for theirs in (stop_in, wake_in, applied_out):  # so that each side sees the other go
                theirs.close()
            workings.applier_process = child
            applier = Applier(store, clock, applies=False, wake=applied)
            writer_wake: Callable[[], None] = wake.set
        else:
            applier = Applier(store, clock, tick=tick, stale_after=stale_after, beat=workings.beat)
            writer_wake = applier.wake
        applier.start()
        app.state.applier = applier
        # The applier (or, with its own process, the server's watcher) looks again once the
        # writer applied events itself, so that `Roomlog-Applied-Through` moves at once.
        writer = Writer(
            store,
            clock=clock,
            wake=writer_wake,
            idle=lambda: applier.oldest_pending is None,
            applied=applier.wake,
            threads=store.settings.writers,
        )
        writer.start()
        app.state.writer = writer
        if deliverer is not None:
            deliverer.start()
        pruner = Pruner(store)
        pruner.start()
        vacuumer = Vacuumer(store.database)
        vacuumer.start()
        # Everything built at start lives as long as the process: keep the collector off it,
        # so that full collections stay short (they showed in the read latency's tail).
        gc.collect()
        gc.freeze()
        collector.pace()
        try:
            yield
        finally:
            # Every request has been answered (the server waits for them before this): the
            # writer commits its last group, the applier gives up its leases at once, and
            # the deliverer hands back the webhook events it claimed.
            log.info("stopping: the requests under way are answered; committing the last events")
            pruner.stop()
            vacuumer.stop()
            if deliverer is not None:
                deliverer.stop()
            writer.stop()
            applier.stop()
            if child is not None:
                stop.set()
                child.join(timeout=30)
                stop.close()
                wake.close()
                applied.close()
                if child.pid is not None:
                    metrics.process_ended(child.pid)
            metrics.process_ended(os.getpid())
            log.info("stopped")

    return lifespan


def create_app(
    database: Database,
    settings: Settings | None = None,
    clock: Callable[[], int] = _now,
    tick: float = 0.25,
    delivery: DeliverySettings | None = None,
    stale_after: int = 0,
    deliver: bool = True,
    chat_link_ttl: int = exports.DEFAULT_LINK_TTL,
    wait: str = "logged",
    appliers: str = "thread",
    public_url: str | None = None,
    metrics_token: str | None = None,
    access_log: bool = True,
) -> Roomlog:
    """The API over `database` (migrated on start), with its writer, applier and webhook
    threads. `wait="applied"` answers writes once their events are applied, by default.
    `appliers="process"` applies them in a process of its own instead of a thread.

    `stale_after` (µs, 0 for never) closes presences with no event or snapshot for that long.
    Without `deliver`, no thread sends webhooks (a test drives `Deliverer.run_once` instead).
    `chat_link_ttl` is how long (s) a session's `chatLink` works. `public_url` is the
    address clients use (Twilio signs it; chat links point at it), when not the one requests
    arrive at. `metrics_token`, when set, is required to read `/metrics`. `access_log` logs
    one line per request.
    """
    store = Store(database, settings)
    deliverer = Deliverer(database, store.queued, delivery, clock=clock) if deliver else None
    state = {
        "database": database,
        "store": store,
        "clock": clock,
        "authenticator": Authenticator(database),
        "receivers": Receivers(database),
        "chat_link_ttl": chat_link_ttl,
        "wait": wait,
        "public_url": public_url or None,
        "metrics_token": metrics_token or None,
        "access_log": access_log,
        "workings": Workings(),
    }
    return Roomlog(
        route_handlers=_routes(),
        state=State(state),
        lifespan=[_workers(store, clock, tick, stale_after, deliverer, appliers)],
        exception_handlers=dict(_EXCEPTION_HANDLERS),
        request_max_body_size=MAX_BODY,
        before_send=[applied_header],
        on_startup=[_open_in_openapi],
        logging_config=None,  # `roomlog serve` configures logging for the whole process
        openapi_config=_openapi(),
    )


def app_from_env() -> Litestar:
    """The app as `roomlog serve` configures it through the environment (for its workers)."""
    logs.configure()
    # Reads run in worker threads beside the event loop and the writer: hand the GIL over
    # sooner than the default 5 ms, which otherwise shows in the tail latency.
    sys.setswitchinterval(0.0005)
    settings = Settings(
        late_window=int(float(os.environ.get("ROOMLOG_LATE_WINDOW", "600")) * MICROS),
        max_skew=int(float(os.environ.get("ROOMLOG_MAX_SKEW", "60")) * MICROS),
        partitions=int(os.environ.get("ROOMLOG_PARTITIONS", "16")),
        writers=int(os.environ.get("ROOMLOG_WRITERS", "2")),
        apply_threads=int(os.environ.get("ROOMLOG_APPLY_THREADS", "2")),
        retention=int(float(os.environ.get("ROOMLOG_RETENTION_DAYS") or 0) * DAY),
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
        wait=os.environ.get("ROOMLOG_WAIT", "logged"),
        appliers=os.environ.get("ROOMLOG_APPLIERS", "thread"),
        public_url=os.environ.get("ROOMLOG_PUBLIC_URL"),
        metrics_token=os.environ.get("ROOMLOG_METRICS_TOKEN"),
        access_log=os.environ.get("ROOMLOG_ACCESS_LOG", "1") == "1",
    )
