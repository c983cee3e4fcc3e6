"""Snapshots as events of the set (SESSION-RULES step 1b), the sightings they record, and the
presences that the stale-presence timeout closes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, select

from roomlog.domain.events import LEFT, MICROS, ROOM_SNAPSHOT, PresenceEvent, RoomEvent
from roomlog.ingest.webhook import Snapshot, derived_id
from roomlog.store.projects import project_by_id
from roomlog.store.rooms import decode_presence
from roomlog.store.schema import rooms, sightings
from roomlog.store.writes import Submission

if TYPE_CHECKING:
    from roomlog.store.store import Store

log = logging.getLogger("roomlog.store")


def snapshot_event(snap: Snapshot) -> RoomEvent:
    """A snapshot as an event of the set: its id is made of its room, instant and people, so
    the same snapshot sent twice is one event."""
    people = tuple(sorted(snap.people))
    listed = hashlib.sha256(json.dumps(people).encode()).hexdigest()[:32]
    eid = derived_id("snapshot", snap.room, str(snap.at), listed)
    return RoomEvent(eid, ROOM_SNAPSHOT, snap.room, snap.at, people)


def sighted(connection: Connection, insert: Any, project_id: int, snap: RoomEvent) -> None:
    """Everyone `snap` lists was seen at its instant (for the stale-presence timeout)."""
    if not snap.people:
        return
    statement = insert(sightings)
    statement = statement.on_conflict_do_update(
        index_elements=["project_id", "room", "participant_id"],
        set_={
            "seen_at": case(
                (sightings.c.seen_at > statement.excluded.seen_at, sightings.c.seen_at),
                else_=statement.excluded.seen_at,
            )
        },
    )
    rows = [
        {"project_id": project_id, "room": snap.room, "participant_id": p, "seen_at": snap.at}
        for p in sorted({person for person, _, _ in snap.people})
    ]
    connection.execute(statement, rows)


def stale_presences(
    connection: Connection, cutoff: int
) -> dict[int, list[tuple[int, PresenceEvent]]]:
    """Per project, a leave for every presence last seen (at its join, or in the latest
    snapshot listing it) at or before `cutoff`, stamped at that last sighting (1 µs after a
    snapshot's)."""
    closing: defaultdict[int, list[tuple[int, PresenceEvent]]] = defaultdict(list)
    occupied = connection.execute(
        select(rooms.c.project_id, rooms.c.name, rooms.c.presence).where(rooms.c.occupancy > 0)
    ).all()
    for pid, name, blob in occupied:
        _, people = decode_presence(blob)
        sighted = select(sightings.c.participant_id, sightings.c.seen_at).where(
            sightings.c.project_id == pid, sightings.c.room == name
        )
        seen = {person: at for person, at in connection.execute(sighted)}
        for person, join, user_id, user_name in people:
            last = max(join, seen.get(person, join))
            if last <= cutoff:
                eid = derived_id("stale", name, person, str(last))
                # Just after a snapshot that listed them: at its own instant, the snapshot
                # (which takes effect after that instant's leaves) would open them again.
                at = last + 1 if last > join else last
                event = PresenceEvent(eid, LEFT, name, person, at, user_id, user_name)
                closing[pid].append((len(closing[pid]), event))
    return dict(closing)


def close_stale(store: Store, now: int, stale_after: int) -> int:
    """End every presence with no event and no snapshot for `stale_after`, at the last time
    it was seen; how many. The leaves go through `store`'s write path like any event."""
    with store.database.reader.connect() as connection:
        closing = stale_presences(connection, now - stale_after)
        submissions = [
            Submission(project_by_id(connection, pid), found) for pid, found in closing.items()
        ]
    for submission in submissions:
        for _, event in submission.events:
            log.info(
                "closing the presence of %r in room %r of project %r at its last"
                " sighting, %.0f s ago: no event or snapshot since",
                event.participant_id,
                event.room,
                submission.project.name,
                (now - event.at) / MICROS,
            )
    if submissions:
        store.ingest(submissions, now)
    return sum(len(found) for found in closing.values())
