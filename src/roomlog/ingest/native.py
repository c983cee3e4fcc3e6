"""roomlog's native event format (SESSION-RULES "Inputs") as JSON: schema, limits, parsing."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from roomlog.domain.events import InvalidTime, PresenceEvent, micros_from_at

MAX_ID: Final = 256
MAX_NAME: Final = 256
MAX_USER_FIELD: Final = 1024

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
UserField = Annotated[str, msgspec.Meta(max_length=MAX_USER_FIELD)]


class NativeEvent(msgspec.Struct):
    """A presence event as clients send it. Unknown fields are ignored."""

    id: Id
    type: Literal["participant.joined", "participant.left"]
    room: Name
    participant_id: Name
    at: int | float | str
    user_id: UserField | None = None
    user_name: UserField | None = None


class InvalidEvent(ValueError):
    """A line or document that is not a valid native event; the message says what is wrong."""


_decoder: Final = msgspec.json.Decoder(NativeEvent)


def to_presence(raw: NativeEvent) -> PresenceEvent:
    try:
        at = micros_from_at(raw.at)
    except InvalidTime as exc:
        raise InvalidEvent(f"{exc} - at `$.at`") from None
    return PresenceEvent(
        raw.id, raw.type, raw.room, raw.participant_id, at, raw.user_id, raw.user_name
    )


def parse_event(document: bytes | str) -> PresenceEvent:
    """One JSON document to a `PresenceEvent`, or `InvalidEvent` naming the field at fault."""
    try:
        raw = _decoder.decode(document)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(str(exc)) from None
    return to_presence(raw)
