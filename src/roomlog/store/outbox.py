"""Outbound webhook events, queued in the same transaction as the change they report.

Daily's four presence events: `meeting.started` when a session begins (after the 30 seconds,
or at the second participant), `meeting.ended` when it ends, `participant.joined` and
`participant.left` for each join and leave stored. Every event has a stable id derived from
what it reports, and the outbox's key (webhook, event id) queues it once per webhook however
often the change is written (a retried transaction, a rebuild, a second process).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

import msgspec
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store.schema import events, outbox

SENT_TYPES: Final = ("meeting.started", "meeting.ended", "participant.joined", "participant.left")

_NAMESPACE: Final = uuid.UUID("6f1c8a52-3d0e-4b8e-9a57-2d0c4a7f1e93")


class Subscriber(NamedTuple):
    webhook_id: str
    types: frozenset[str]


class Queued(NamedTuple):
    type: str
    id: str
    payload: dict[str, Any]


def event_id(project_id: int, kind: str, subject: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}\x00{kind}\x00{subject}"))


def _seconds(micros: int) -> float | int:
    whole, rest = divmod(micros, MICROS)
    return whole if rest == 0 else micros / MICROS


def meeting_events(project_id: int, rows: Iterable[dict[str, Any]]) -> list[Queued]:
    """The meeting events of stored session rows (`rooms.session_row`)."""
    queued: list[Queued] = []
    for row in rows:
        payload = {
            "start_ts": _seconds(row["start_at"]),
            "meeting_id": row["id"],
            "room": row["room"],
        }
        queued.append(
            Queued("meeting.started", event_id(project_id, "started", row["id"]), payload)
        )
        if row["end_at"] is not None:
            ended = {**payload, "end_ts": _seconds(row["end_at"])}
            queued.append(Queued("meeting.ended", event_id(project_id, "ended", row["id"]), ended))
    return queued


def participant_events(
    connection: Connection, project_id: int, stored: Iterable[PresenceEvent]
) -> list[Queued]:
    """The participant events of newly stored presence events."""
    queued: list[Queued] = []
    for event in stored:
        payload: dict[str, Any] = {
            "room": event.room,
            "session_id": event.participant_id,
            "user_id": event.user_id,
            "user_name": event.user_name,
            "owner": False,
        }
        if event.type == JOINED:
            payload["joined_at"] = _seconds(event.at)
        else:
            joined = _last_join(connection, project_id, event)
            payload["joined_at"] = None if joined is None else _seconds(joined)
            payload["duration"] = None if joined is None else _seconds(event.at - joined)
        kind = event.type
        queued.append(Queued(kind, event_id(project_id, kind, event.id), payload))
    return queued


def _last_join(connection: Connection, project_id: int, leave: PresenceEvent) -> int | None:
    query = select(func.max(events.c.at)).where(
        events.c.project_id == project_id,
        events.c.room == leave.room,
        events.c.participant_id == leave.participant_id,
        events.c.joined == 1,
        events.c.at <= leave.at,
    )
    found: int | None = connection.execute(query).scalar()
    return found


def queue(
    connection: Connection,
    sqlite: bool,
    subs: list[Subscriber],
    items: list[Queued],
    now: int,
) -> int:
    """Queue `items` for every webhook subscribed to their type; how many rows it tried."""
    rows = [
        {
            "webhook_id": sub.webhook_id,
            "event_id": item.id,
            "type": item.type,
            "payload": msgspec.json.encode(item.payload),
            "created_at": now,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
        }
        for item in items
        for sub in subs
        if item.type in sub.types
    ]
    if not rows:
        return 0
    insert = sqlite_insert if sqlite else pg_insert
    statement = insert(outbox).on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
    connection.execute(statement, rows)
    return len(rows)
