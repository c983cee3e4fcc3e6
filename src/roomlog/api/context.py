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


def meeting(source: Database, project_id: int, meeting_id: str) -> MeetingSession:
    """The project's session `meeting_id`; another project's answers 404 like an unknown one."""
    with source.engine.connect() as connection:
        found = queries.get_meeting(connection, project_id, meeting_id)
    if found is None:
        raise ApiError(404, NOT_FOUND, f"no meeting {meeting_id!r}")
    return found
