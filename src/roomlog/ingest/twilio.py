"""Twilio Video room status callbacks: form-encoded, signed with the account's auth token.

`X-Twilio-Signature` is checked with the `twilio` package's validator against the URL Twilio
called, so a proxy in front of roomlog must pass the original host and scheme on. The
callbacks carry no event id: a room's `SequenceNumber` orders its callbacks, and with the room
sid it identifies one. Twilio has no display names; the identity is the user id.
"""

from __future__ import annotations

from typing import Any, Final, cast
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from roomlog.domain.events import (
    JOINED,
    LEFT,
    EventType,
    InvalidTime,
    PresenceEvent,
    micros_from_rfc3339,
)
from roomlog.ingest.webhook import Forged, Inbound, Mapped, RoomEnd, Unreadable, body_id

FIELDS: Final = ("auth_token",)

# The package has no type hints: say what its validator is.
_validator = cast("type[Any]", RequestValidator)

_KINDS: Final[dict[str, EventType]] = {
    "participant-connected": JOINED,
    "participant-disconnected": LEFT,
}


def receive(inbound: Inbound, credentials: dict[str, str]) -> Mapped:
    given = inbound.headers.get("x-twilio-signature")
    if not given:
        raise Forged("no X-Twilio-Signature header")
    try:
        form = dict(parse_qsl(inbound.body.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise Forged("the body is not a form Twilio signed") from None
    if not _validator(credentials["auth_token"]).validate(inbound.url, form, given):
        raise Forged("the Twilio signature does not verify for this URL and body")
    kind = form.get("StatusCallbackEvent", "")
    room = form.get("RoomName") or form.get("RoomSid", "")
    if kind not in _KINDS and kind != "room-ended":
        return Mapped(ignored=f"Twilio event {kind!r} says nothing about presence")
    if not room:
        raise Unreadable(f"{kind} without RoomName or RoomSid")
    stamp = form.get("Timestamp")
    try:
        at = micros_from_rfc3339(stamp) if stamp else inbound.received_at
    except InvalidTime as exc:
        raise Unreadable(f"Timestamp: {exc}") from None
    sequence = form.get("SequenceNumber")
    room_sid = form.get("RoomSid")
    event_id = (
        f"twilio:{room_sid}:{sequence}"
        if room_sid and sequence
        else body_id("twilio", inbound.body)
    )
    if kind == "room-ended":
        return Mapped(room_ends=[RoomEnd(event_id, room, at)])
    participant = form.get("ParticipantSid", "")
    if not participant:
        raise Unreadable(f"{kind} without ParticipantSid")
    identity = form.get("ParticipantIdentity") or None
    return Mapped(events=[PresenceEvent(event_id, _KINDS[kind], room, participant, at, identity)])
