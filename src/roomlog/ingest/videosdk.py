"""VideoSDK webhooks: `participant-joined`, `participant-left`, `session-ended`.

VideoSDK signs the raw body with RSA-SHA256 (PKCS#1 v1.5) and sends the base64 signature in
`videosdk-signature`; it is checked against VideoSDK's public key set for the project.
The participant events carry neither a time nor an event id: the time is when roomlog received
the webhook, and the id is the body's hash with the minute it arrived in, so a redelivery
within that minute is a duplicate (a later one is a join while present or a leave while
absent, which SESSION-RULES step 1 ignores).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from roomlog.domain.events import (
    JOINED,
    LEFT,
    MICROS,
    EventType,
    InvalidTime,
    PresenceEvent,
    micros_from_at,
)
from roomlog.ingest.webhook import Forged, Inbound, Mapped, RoomEnd, Unreadable, body_id

FIELDS: Final = ("public_key",)

_KINDS: Final[dict[str, EventType]] = {"participant-joined": JOINED, "participant-left": LEFT}


class _Envelope(msgspec.Struct):
    webhookType: str  # noqa: N815 - VideoSDK's field names
    data: dict[str, Any]


class _Participant(msgspec.Struct):
    meetingId: str  # noqa: N815
    participantId: str  # noqa: N815
    participantName: str | None = None  # noqa: N815


def public_key(pem: str) -> rsa.RSAPublicKey:
    """The RSA public key in `pem`, or ValueError saying what it is instead."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("VideoSDK signs with RSA; this is another kind of key")
    return key


def _verify(inbound: Inbound, pem: str) -> None:
    given = inbound.headers.get("videosdk-signature")
    if not given:
        raise Forged("no videosdk-signature header")
    try:
        signature = base64.b64decode(given, validate=True)
        public_key(pem).verify(signature, inbound.body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        raise Forged("the VideoSDK signature does not verify") from None


def _time(data: dict[str, Any], name: str, fallback: int) -> int:
    value = data.get(name)
    if value is None:
        return fallback
    try:
        return micros_from_at(value)
    except (InvalidTime, TypeError):
        raise Unreadable(f"`data.{name}` is not a time: {value!r}") from None


def receive(inbound: Inbound, credentials: dict[str, str]) -> Mapped:
    _verify(inbound, credentials["public_key"])
    try:
        envelope = msgspec.json.decode(inbound.body, type=_Envelope)
    except msgspec.DecodeError as exc:
        raise Unreadable(f"not a VideoSDK webhook: {exc}") from None
    kind = envelope.webhookType
    minute = inbound.received_at // (60 * MICROS)
    event_id = f"{body_id('videosdk', inbound.body)}:{minute}"
    if kind == "session-ended":
        room = envelope.data.get("meetingId")
        if not isinstance(room, str) or not room:
            raise Unreadable("session-ended without `data.meetingId`")
        return Mapped(
            room_ends=[RoomEnd(event_id, room, _time(envelope.data, "end", inbound.received_at))]
        )
    if kind not in _KINDS:
        return Mapped(ignored=f"VideoSDK event {kind!r} says nothing about presence")
    try:
        person = msgspec.convert(envelope.data, _Participant)
    except msgspec.ValidationError as exc:
        raise Unreadable(f"{kind}: {exc} in `data`") from None
    event = PresenceEvent(
        event_id,
        _KINDS[kind],
        person.meetingId,
        person.participantId,
        inbound.received_at,
        person.participantId,
        person.participantName,
    )
    return Mapped(events=[event])
