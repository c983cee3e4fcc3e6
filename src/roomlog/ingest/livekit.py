"""LiveKit webhooks: verified with LiveKit's own package, mapped onto presence events.

LiveKit signs each webhook with a JWT in `Authorization` (HS256 with the API secret, issued by
the API key) whose `sha256` claim is the body's hash. `participant_joined` opens a presence
at the participant's join time; `participant_left` and `participant_connection_aborted` close
it at the event's time; `room_finished` closes every presence still open in the room.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.json_format import ParseError
from livekit import api

from roomlog.domain.events import JOINED, LEFT, MICROS, EventType, PresenceEvent
from roomlog.ingest.webhook import Forged, Inbound, Mapped, RoomEnd, Unreadable, body_id

FIELDS: Final = ("api_key", "api_secret")

_LEAVING: Final = frozenset({"participant_left", "participant_connection_aborted"})


def receive(inbound: Inbound, credentials: dict[str, str]) -> Mapped:
    token = inbound.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise Forged("no Authorization header; LiveKit signs every webhook with a JWT there")
    verifier = api.TokenVerifier(credentials["api_key"], credentials["api_secret"])
    try:
        body = inbound.body.decode()
    except UnicodeDecodeError:
        raise Unreadable("the body is not UTF-8 JSON") from None
    try:
        event = api.WebhookReceiver(verifier).receive(body, token)
    except ParseError as exc:  # raised only after the signature and the hash were checked
        raise Unreadable(f"not a LiveKit webhook event: {exc}") from None
    except Exception as exc:  # the package signals every verification failure this way
        raise Forged(f"the LiveKit signature does not verify: {exc}") from None
    created = event.created_at * MICROS if event.created_at > 0 else inbound.received_at
    event_id = event.id or body_id("livekit", inbound.body)
    room = event.room.name
    if event.event == "room_finished":
        if not room:
            raise Unreadable("room_finished without a room name")
        return Mapped(room_ends=[RoomEnd(event_id, room, created)])
    if event.event != "participant_joined" and event.event not in _LEAVING:
        return Mapped(ignored=f"LiveKit event {event.event!r} says nothing about presence")
    person = event.participant
    if not room or not person.sid:
        raise Unreadable(f"{event.event} without a room name or a participant sid")
    if event.event == "participant_joined":
        if person.joined_at_ms > 0:
            at = person.joined_at_ms * 1000
        elif person.joined_at > 0:
            at = person.joined_at * MICROS
        else:
            at = created
        kind: EventType = JOINED
    else:
        at, kind = created, LEFT
    presence = PresenceEvent(
        event_id, kind, room, person.sid, at, person.identity or None, person.name or None
    )
    return Mapped(events=[presence])
