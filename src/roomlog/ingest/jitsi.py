"""Jitsi Meet through the community `event_sync` Prosody component (jitsi-contrib).

The component POSTs JSON to `<api_prefix>/events/occupant/joined`, `.../occupant/left`,
`.../room/created` and `.../room/destroyed`, with the headers of its `api_headers` setting:
roomlog expects `Authorization: Bearer <secret>`. The occupant's JID is the participant id; the
JWT user's `id` (or else e-mail) the user id and `name` the user name. Times are whole seconds.
Breakout rooms are rooms of their own, named `<room>/<breakout id>`, since the component names
them after the main room. The posts carry no event id: one is derived from what they say.
"""

from __future__ import annotations

import hmac
from typing import Final

import msgspec

from roomlog.domain.events import (
    JOINED,
    LEFT,
    EventType,
    InvalidTime,
    PresenceEvent,
    micros_from_unix,
)
from roomlog.ingest.webhook import Forged, Inbound, Mapped, RoomEnd, Unreadable, derived_id

FIELDS: Final = ("secret",)


class _Occupant(msgspec.Struct):
    occupant_jid: str
    joined_at: float | None = None
    left_at: float | None = None
    id: str | None = None
    email: str | None = None
    name: str | None = None


class _Post(msgspec.Struct):
    event_name: str
    room_name: str
    is_breakout: bool = False
    breakout_room_id: str | None = None
    occupant: _Occupant | None = None
    destroyed_at: float | None = None


def _verify(inbound: Inbound, secret: str) -> None:
    given = inbound.headers.get("authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(
        given.removeprefix("Bearer ").encode(), secret.encode()
    ):
        raise Forged("Authorization must be `Bearer <the Jitsi secret set for this project>`")


def _micros(value: float | None, fallback: int) -> int:
    return fallback if value is None else micros_from_unix(value)


def receive(inbound: Inbound, credentials: dict[str, str]) -> Mapped:
    _verify(inbound, credentials["secret"])
    try:
        post = msgspec.json.decode(inbound.body, type=_Post)
    except msgspec.DecodeError as exc:
        raise Unreadable(f"not an event_sync post: {exc}") from None
    room = post.room_name
    if post.is_breakout and post.breakout_room_id:
        room = f"{room}/{post.breakout_room_id}"
    try:
        if post.event_name == "muc-room-destroyed":
            at = _micros(post.destroyed_at, inbound.received_at)
            return Mapped(room_ends=[RoomEnd(derived_id("jitsi", room, "end", str(at)), room, at)])
        if post.event_name not in ("muc-occupant-joined", "muc-occupant-left"):
            return Mapped(ignored=f"Jitsi event {post.event_name!r} says nothing about presence")
        person = post.occupant
        if person is None:
            raise Unreadable(f"{post.event_name} without `occupant`")
        joined = post.event_name == "muc-occupant-joined"
        at = _micros(person.joined_at if joined else person.left_at, inbound.received_at)
    except InvalidTime as exc:
        raise Unreadable(str(exc)) from None
    kind: EventType = JOINED if joined else LEFT
    event = PresenceEvent(
        derived_id("jitsi", room, person.occupant_jid, kind, str(at)),
        kind,
        room,
        person.occupant_jid,
        at,
        person.id or person.email or None,
        person.name or None,
    )
    return Mapped(events=[event])
