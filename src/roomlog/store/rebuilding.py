"""A room re-derived from its event log: after a late event, from the newest checkpoint at or
before it; for `roomlog rebuild`, from the room's first event (or its floor, once pruned)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from roomlog import metrics
from roomlog.domain.engine import LateEvent
from roomlog.domain.events import MICROS
from roomlog.store import rooms as room_state
from roomlog.store.checkpoints import floor, newest_before
from roomlog.store.log import room_events, room_wide

if TYPE_CHECKING:
    from roomlog.store.store import Store

log = logging.getLogger("roomlog.store")


def rebuilt(
    store: Store,
    connection: Connection,
    project_id: int,
    name: str,
    now: int,
    late: LateEvent | None = None,
) -> room_state.RoomWrite:
    """Room `name` from its event log: for an event late at `late`, from the newest
    checkpoint at or before it (the events before it cannot change anything after it);
    otherwise, or without one, from the beginning (or the floor retention left)."""
    start = None if late is None else newest_before(connection, project_id, name, late.at)
    if start is None:
        start = floor(connection, project_id, name)
    since = None if start is None else start[0].at
    found = room_events(connection, project_id, name, since)
    store.rebuild_events += len(found)
    metrics.REBUILD_EVENTS.inc(len(found))
    tenant = store._tenant(connection, project_id)
    if late is not None:
        log.info(
            "room %r of project %r: an event %.3f s before its checkpoint; rebuilding it"
            " from %s: %d events",
            name,
            tenant,
            (late.checkpoint - late.at) / MICROS,
            "its checkpoint at or before that event" if start else "its whole event log",
            len(found),
        )
    return room_state.rebuilt(
        project_id,
        name,
        store.settings.rules,
        tenant,
        found,
        now,
        store.settings.late_window,
        room_wide(connection, project_id, name, since),
        start,
    )
