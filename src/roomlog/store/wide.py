"""Room ends and snapshots in the write path (SESSION-RULES step 1b): taken from a request as
events, appended to the log beside the presence events (one id space), and handed to their
rooms' engines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from roomlog.domain import strings
from roomlog.domain.engine import Wide, wide
from roomlog.domain.events import ROOM_ENDED, ROOM_SNAPSHOT, RoomEvent
from roomlog.store.log import append_room_events, room_content
from roomlog.store.snapshots import sighted, snapshot_event
from roomlog.store.writes import IngestResult, Submission, Window, admitted, conflict


def room_events_of(
    connection: Connection,
    insert: Any,
    submissions: Sequence[Submission],
    results: list[IngestResult],
    window: Window,
) -> list[tuple[int, int, RoomEvent]]:
    """The room ends and snapshots of `submissions` as events, (submission, index, event);
    those stamped too far ahead are rejected. Snapshots count as sightings."""
    found: list[tuple[int, int, RoomEvent]] = []
    for n, submission in enumerate(submissions):
        items = [
            *((i, RoomEvent(e.id, ROOM_ENDED, e.room, e.at)) for i, e in submission.room_ends),
            *((i, snapshot_event(snap)) for i, snap in submission.snapshots),
            *submission.room_events,
        ]
        for index, given in items:
            what = "the room's end" if given.type == ROOM_ENDED else "the snapshot"
            rejected = results[n].rejected
            event = admitted(given, strings.room_event, index, rejected, window, what)
            if event is None:
                continue
            found.append((n, index, event))
            if event.type == ROOM_SNAPSHOT:
                sighted(connection, insert, submission.project.id, event)
    return found


def append_new(
    connection: Connection,
    insert: Any,
    submissions: Sequence[Submission],
    results: list[IngestResult],
    items: list[tuple[int, int, RoomEvent]],
    now: int,
) -> dict[tuple[int, str], list[Wide]]:
    """Append the room events `items` to the log; the new ones, per (project, room)."""
    fresh: defaultdict[tuple[int, str], list[Wide]] = defaultdict(list)
    by_project: defaultdict[int, list[tuple[int, int, RoomEvent]]] = defaultdict(list)
    for item in items:
        by_project[submissions[item[0]].project.id].append(item)
    for pid, mine in sorted(by_project.items()):
        inserted, stored = append_room_events(connection, insert, pid, [e for _, _, e in mine], now)
        seen: dict[str, RoomEvent] = {}
        for n, index, event in mine:
            kept = seen.get(event.id)
            if kept is None and event.id in inserted:
                seen[event.id] = event
                results[n].accepted += 1
                fresh[(pid, event.room)].append(wide(event))
            elif (
                kept is not None
                and (room_content(kept) == room_content(event) or submissions[n].id_is_identity)
            ) or (
                kept is None
                and event.id in stored
                and (stored[event.id] == room_content(event) or submissions[n].id_is_identity)
            ):
                results[n].duplicates += 1
            else:
                results[n].rejected.append(conflict(index, event))
    return fresh


def rooms_of(submission: Submission) -> set[str]:
    return (
        {e.room for _, e in submission.room_ends}
        | {s.room for _, s in submission.snapshots}
        | {e.room for _, e in submission.room_events}
    )
