"""One log line per request, its id, and its place in the request metrics.

Every request gets an id: the `X-Request-Id` its client or proxy sent (when it is a short
token), else a new one. The answer carries it in `X-Request-Id`, an error body as
`request_id`, and the request's log line as `id`. A line says the method, the route (its
template, never the path's values or the query string, which may hold tokens), the status,
the duration, the project (once the request's key or token named one) and the bytes in and
out; never a header, key or secret.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from litestar.types import HTTPScope, Message, Send

from roomlog import metrics
from roomlog.logs import FIELDS, direct

log = logging.getLogger("roomlog.access")

HEADER: Final = b"x-request-id"
_GIVEN_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
UNMATCHED: Final = "unmatched"


def is_write(method: str, route: str) -> bool:
    """Whether `route` is a write route, whose durations `roomlog_ingest_request_seconds`
    shows: events, provider webhooks and snapshots."""
    return (method == "POST" and (route == "/v1/events" or route.startswith("/v1/ingest/"))) or (
        method == "PUT" and route.startswith("/v1/rooms/") and route.endswith("/presence")
    )


@dataclass(slots=True)
class Access:
    """What the log line of one request says; filled in as the request goes."""

    id: str
    method: str
    route: str = ""
    status: int = 0
    project: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0


# A new id is this process's random prefix and a serial: unique without a system call.
_PREFIX: Final = uuid.uuid4().hex[:8]
_serial = itertools.count()

_current: ContextVar[Access | None] = ContextVar("roomlog_access", default=None)


def current() -> Access | None:
    return _current.get()


def name_project(name: str) -> None:
    """Say which project the current request is for (once its credentials named it)."""
    found = _current.get()
    if found is not None:
        found.project = name


def begin(scope: HTTPScope) -> Access:
    given, length = None, 0
    for name, value in scope["headers"]:
        if name == HEADER and _GIVEN_ID.fullmatch(value):
            given = value.decode()
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    request_id = given or f"{_PREFIX}{next(_serial):08x}"
    access = Access(request_id, scope["method"], bytes_in=length)
    _current.set(access)
    return access


def sender(access: Access, send: Send) -> Send:
    """`send`, noting the status and bytes out, and adding the request id header."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            access.status = message["status"]
            message["headers"] = [*message.get("headers", ()), (HEADER, access.id.encode())]
        elif message["type"] == "http.response.body":
            access.bytes_out += len(message.get("body", b""))
        await send(message)

    return sending


def finish(access: Access, scope: HTTPScope, started: float, logs: bool) -> None:
    """Log the request (when `logs`) and count it."""
    seconds = time.perf_counter() - started
    route = access.route or scope.get("path_template", "") or UNMATCHED
    status = access.status or 499  # the client went away before an answer
    metrics.labelled(metrics.REQUESTS, access.method, route, str(status)).inc()
    if is_write(access.method, route):
        metrics.labelled(metrics.INGEST_SECONDS, route).observe(seconds)
    if not logs:
        return
    fields = {
        "method": access.method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "project": access.project,
        "bytes_in": access.bytes_in,
        "bytes_out": access.bytes_out,
        "id": access.id,
    }
    message = f"{access.method} {route} {status} {seconds * 1000:.1f} ms"
    to = direct(log)
    if to is None:
        log.info("%s", message, extra={FIELDS: fields})
    else:
        to.handler.write(to.formatter.line(time.time(), "INFO", log.name, message, fields))
