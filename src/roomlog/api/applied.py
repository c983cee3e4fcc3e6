"""Reading one's writes: waiting until appended events are applied (`?wait=applied`), and the
`Roomlog-Applied-Through` header every answer carries.

Events are acknowledged once appended to the log; their partition's applier applies them
within a second or so. A request with `wait=applied` (or every request, where the server
runs with `--wait applied`) is answered once its events are applied: this process's applier
says so at once for the partitions it holds; for the others, the `pending` table is asked.
`Roomlog-Applied-Through` is an instant (RFC 3339) such that every event acknowledged
before it is reflected in the sessions an answer reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from anyio import to_thread
from litestar.datastructures import MutableScopeHeaders, State
from litestar.types import Message, Scope

from roomlog.domain.events import rfc3339
from roomlog.store import leases
from roomlog.store.db import Database
from roomlog.workers.applier import Applier

HEADER: Final = "Roomlog-Applied-Through"
WAIT_VALUES: Final = ("applied", "logged")
TIMEOUT: Final = 30.0


def wants_wait(state: State, given: str | None) -> bool:
    """Whether a request's `wait` (or the server's default) asks for applied events."""
    chosen = given or state.get("wait", "logged")
    return bool(chosen == "applied")


def _still_pending(database: Database, waiting: dict[int, int]) -> bool:
    with database.engine.connect() as connection:
        return leases.still_pending(connection, waiting)


async def until_applied(state: State, waiting: dict[int, int]) -> bool:
    """Wait until the `pending` rows `waiting` (part: id) are applied; False after `TIMEOUT`."""
    applier: Applier = state.applier
    database: Database = state.database
    deadline = time.monotonic() + TIMEOUT
    asked = 0.0
    while True:
        left = {p: i for p, i in waiting.items() if applier.done.get(p, 0) < i}
        if not left:
            return True
        if time.monotonic() >= asked + 0.05:  # partitions held elsewhere: ask the database
            asked = time.monotonic()
            if not await to_thread.run_sync(_still_pending, database, left):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.002)


async def applied_header(message: Message, scope: Scope) -> None:
    """Add `Roomlog-Applied-Through` to every HTTP answer of the app."""
    if message["type"] != "http.response.start":
        return
    applier: Applier | None = scope["app"].state.get("applier")
    if applier is None or not applier.checked_at:
        return
    headers = MutableScopeHeaders.from_message(message)
    headers[HEADER] = rfc3339(applier.applied_through())


def header_value(state: Any) -> bytes | None:
    applier: Applier | None = state.get("applier")
    if applier is None or not applier.checked_at:
        return None
    return rfc3339(applier.applied_through()).encode()
