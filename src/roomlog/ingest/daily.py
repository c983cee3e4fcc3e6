"""Daily webhooks: `participant.joined` and `participant.left`, signed with the webhook's HMAC.

`X-Webhook-Signature` is base64(HMAC-SHA256(base64-decoded secret, timestamp + "." + body))
with the timestamp from `X-Webhook-Timestamp`. Daily checks a new webhook's endpoint with a
`{"test": "test"}` POST, which is answered with 200 and stores nothing. A signed webhook
whose timestamp is more than 300 s from the server's clock is refused (a replay window).
Daily reports a leave as the join time plus the time in the call; both are in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Final

import msgspec

from roomlog.domain.events import (
    JOINED,
    LEFT,
    MICROS,
    InvalidTime,
    PresenceEvent,
    micros_from_unix,
)
from roomlog.ingest.webhook import Forged, Inbound, Mapped, Unreadable

FIELDS: Final = ("hmac",)

_TEST: Final = {"test": "test"}


class _Payload(msgspec.Struct):
    room: str
    session_id: str
    joined_at: float
    user_id: str | None = None
    user_name: str | None = None
    duration: float | None = None


class _Envelope(msgspec.Struct):
    type: str
    id: str
    payload: dict[str, Any]
    event_ts: float | None = None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Daily's signature of `body` sent at `timestamp`; roomlog's own webhooks use it too."""
    key = base64.b64decode(secret)
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# How far a signed webhook's timestamp may be from the server's clock, in seconds.
MAX_AGE: Final = 300


def _verify(inbound: Inbound, secret: str) -> None:
    given = inbound.headers.get("x-webhook-signature")
    timestamp = inbound.headers.get("x-webhook-timestamp")
    if not given or not timestamp:
        raise Forged("X-Webhook-Signature and X-Webhook-Timestamp are required")
    try:
        expected = signature(secret, timestamp, inbound.body)
    except ValueError:  # binascii.Error, or a secret that is not ASCII
        raise Forged("the Daily HMAC secret set for this project is not base64") from None
    if not hmac.compare_digest(expected, given):
        raise Forged("the Daily signature does not verify")
    try:
        sent = float(timestamp)
    except ValueError:
        raise Forged("X-Webhook-Timestamp is not a number") from None
    if sent > 1e11:  # milliseconds
        sent /= 1000
    age = inbound.received_at / MICROS - sent
    if abs(age) > MAX_AGE:
        raise Forged(
            f"X-Webhook-Timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}: roomlog"
            f" takes signed webhooks up to {MAX_AGE} s from its clock (a replay window);"
            " check the clocks"
        )


def probe(inbound: Inbound) -> str | None:
    """Daily's check of a new webhook's endpoint, answered before any credentials exist (the
    HMAC secret is only known once Daily has created the webhook)."""
    try:
        document = msgspec.json.decode(inbound.body)
    except msgspec.DecodeError:
        return None
    return "Daily's verification request" if document == _TEST else None


def receive(inbound: Inbound, credentials: dict[str, str]) -> Mapped:
    _verify(inbound, credentials["hmac"])
    try:
        document = msgspec.json.decode(inbound.body)
    except msgspec.DecodeError as exc:
        raise Unreadable(f"the body is not JSON: {exc}") from None
    try:
        envelope = msgspec.convert(document, _Envelope)
    except msgspec.ValidationError as exc:
        raise Unreadable(f"not a Daily webhook event: {exc}") from None
    if envelope.type not in (JOINED, LEFT):
        return Mapped(ignored=f"Daily event {envelope.type!r} says nothing about presence")
    try:
        payload = msgspec.convert(envelope.payload, _Payload)
        joined = micros_from_unix(payload.joined_at)
        if envelope.type == JOINED:
            at = joined
        elif payload.duration is not None:
            at = joined + micros_from_unix(payload.duration)
        elif envelope.event_ts is not None:
            at = micros_from_unix(envelope.event_ts)
        else:
            raise Unreadable("participant.left without `duration` or `event_ts`")
    except (msgspec.ValidationError, InvalidTime) as exc:
        raise Unreadable(f"{envelope.type}: {exc} in `payload`") from None
    event = PresenceEvent(
        envelope.id,
        JOINED if envelope.type == JOINED else LEFT,
        payload.room,
        payload.session_id,
        at,
        payload.user_id,
        payload.user_name,
    )
    return Mapped(events=[event])
