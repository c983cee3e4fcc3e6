"""Room ends and snapshots, resolved against the event log into the leaves and joins they
stand for."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from sqlalchemy import Connection, case, select

from roomlog.domain.engine import Stamped, stamp
from roomlog.domain.events import JOINED, LEFT, MICROS, EventType, PresenceEvent
from roomlog.ingest.webhook import Snapshot, derived_id
from roomlog.store.rooms import decode_presence
from roomlog.store.schema import events, rooms, sightings
from roomlog.store.writes import Submission

# How far back a room end or a snapshot looks for presences still open: one open longer than
# this is left to its own leave (or to the stale-presence timeout).
LOOKBACK: Final = 7 * 86_400 * MICROS


def resolve(
    connection: Connection,
    insert: Any,
    submission: Submission,
    pending: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
) -> list[tuple[int, PresenceEvent]]:
    """The events that `submission`'s room ends and snapshots stand for."""
    pid = submission.project.id
    made: list[tuple[int, PresenceEvent]] = []
    for index, end in submission.room_ends:
        present = _present_at(connection, pid, end.room, end.at, pending)
        for person, (user_id, user_name) in sorted(present.items()):
            eid = derived_id(end.id, person)
            made.append(
                (index, PresenceEvent(eid, LEFT, end.room, person, end.at, user_id, user_name))
            )
    for index, snap in submission.snapshots:
        present = _present_at(connection, pid, snap.room, snap.at, pending)
        listed = {person: (uid, name) for person, uid, name in snap.people}
        for person in sorted(set(present) | set(listed)):
            if (person in present) == (person in listed):
                continue
            kind: EventType = LEFT if person in present else JOINED
            uid, name = present.get(person) or listed[person]
            eid = derived_id("snapshot", snap.room, str(snap.at), person, kind)
            made.append((index, PresenceEvent(eid, kind, snap.room, person, snap.at, uid, name)))
        _sighted(connection, insert, pid, snap)
    return made


def _present_at(
    connection: Connection,
    project_id: int,
    room: str,
    at: int,
    pending: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
) -> dict[str, tuple[str | None, str | None]]:
    """Who is present in `room` just before `at` (SESSION-RULES step 1, over the log
    since `LOOKBACK` and the events waiting in this transaction)."""
    query = select(
        events.c.at,
        events.c.joined,
        events.c.participant_id,
        events.c.user_id,
        events.c.user_name,
    ).where(
        events.c.project_id == project_id,
        events.c.room == room,
        events.c.at >= at - LOOKBACK,
        events.c.at < at,
    )
    walk: list[Stamped] = [
        (when * 2 + joined, person, uid, name)
        for when, joined, person, uid, name in connection.execute(query)
    ]
    walk += [
        stamp(e)
        for (p, _), (_, _, e) in pending.items()
        if p == project_id and e.room == room and e.at < at
    ]
    walk.sort(key=lambda s: s[0])
    present: dict[str, tuple[str | None, str | None]] = {}
    for mark, person, uid, name in walk:
        if mark & 1:
            present.setdefault(person, (uid, name))
        else:
            present.pop(person, None)
    return present


def _sighted(connection: Connection, insert: Any, project_id: int, snap: Snapshot) -> None:
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
    snapshot listing it) at or before `cutoff`, stamped at that last sighting."""
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
                event = PresenceEvent(eid, LEFT, name, person, last, user_id, user_name)
                closing[pid].append((len(closing[pid]), event))
    return dict(closing)
