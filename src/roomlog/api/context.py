"""What the routes read from the running application: its database, the service's clock,
and a session of the caller's project (or Daily's 404)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State

from roomlog.api.errors import NOT_FOUND, ApiError
from roomlog.domain.sessions import MeetingSession
from roomlog.store import queries
from roomlog.store.db import Database


def database(state: State) -> Database:
    found: Database = state.database
    return found


def clock(request: Request[Any, Any, Any]) -> int:
    """Now (µs) by the service's clock, which tests move by hand."""
    now: Callable[[], int] = request.app.state.clock
    return now()


def base_url(request: Request[Any, Any, Any]) -> str:
    """The address clients reach this service at: `serve --public-url`, else the one the
    request came to (as the proxy's forwarded headers say, for `--forwarded-allow-ips`)."""
    configured: str | None = request.app.state.public_url
    return configured.rstrip("/") + "/" if configured else str(request.base_url)


def public_url(request: Request[Any, Any, Any]) -> str:
    """The full URL the client called: the request's path and query under `base_url`. A
    Twilio signature covers this URL."""
    configured: str | None = request.app.state.public_url
    if not configured:
        return str(request.url)
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    return configured.rstrip("/") + path + ("?" + query if query else "")


def meeting(source: Database, project_id: int, meeting_id: str) -> MeetingSession:
    """The project's session `meeting_id`; another project's answers 404 like an unknown one."""
    with source.reader.connect() as connection:
        found = queries.get_meeting(connection, project_id, meeting_id)
    if found is None:
        raise ApiError(404, NOT_FOUND, f"no meeting {meeting_id!r}")
    return found
