"""roomlog's native event format (SESSION-RULES "Inputs") as JSON: schema, limits, parsing.

Besides presence events, a native event may be a chat message (`chat.message`), which takes
no part in the session rules: it is kept with the session of its room that it falls in.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Literal

import msgspec

from roomlog.domain.events import ChatMessage, InvalidTime, PresenceEvent, micros_from_at

MAX_ID: Final = 256
MAX_NAME: Final = 256
MAX_USER_FIELD: Final = 1024
MAX_TEXT: Final = 16_384
CHAT: Final = "chat.message"

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
UserField = Annotated[str, msgspec.Meta(max_length=MAX_USER_FIELD)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]


class NativeEvent(msgspec.Struct):
    """A presence event as clients send it. Unknown fields are ignored."""

    id: Id
    type: Literal["participant.joined", "participant.left"]
    room: Name
    participant_id: Name
    at: int | float | str
    user_id: UserField | None = None
    user_name: UserField | None = None


class NativeChat(msgspec.Struct):
    """A chat message as clients send it. Without an `id`, one is made of its content, so
    the same message sent twice is stored once."""

    type: Literal["chat.message"]
    room: Name
    participant_id: Name
    text: Text
    at: int | float | str
    id: Id | None = None
    user_name: UserField | None = None


class _Kind(msgspec.Struct):
    type: object = None


class InvalidEvent(ValueError):
    """A line or document that is not a valid native event; the message says what is wrong."""


_decoder: Final = msgspec.json.Decoder(NativeEvent)
_chat_decoder: Final = msgspec.json.Decoder(NativeChat)
_kind_decoder: Final = msgspec.json.Decoder(_Kind)


def to_presence(raw: NativeEvent) -> PresenceEvent:
    at = _at(raw)
    return PresenceEvent(
        raw.id, raw.type, raw.room, raw.participant_id, at, raw.user_id, raw.user_name
    )


def _at(raw: NativeEvent | NativeChat) -> int:
    try:
        return micros_from_at(raw.at)
    except InvalidTime as exc:
        raise InvalidEvent(f"{exc} - at `$.at`") from None


def to_chat(raw: NativeChat) -> ChatMessage:
    at = _at(raw)
    made = raw.id
    if made is None:
        content = "\x1f".join((raw.room, raw.participant_id, str(at), raw.text))
        made = "chat:" + hashlib.sha256(content.encode()).hexdigest()[:40]
    return ChatMessage(made, raw.room, raw.participant_id, at, raw.text, raw.user_name)


def is_chat(document: bytes | str) -> bool:
    """Whether a JSON document (valid or not) says it is a chat message."""
    try:
        return _kind_decoder.decode(document).type == CHAT
    except msgspec.DecodeError:
        return False


def parse_item(document: bytes | str) -> PresenceEvent | ChatMessage:
    """One JSON document to a presence event or a chat message, or `InvalidEvent`.

    The presence event is tried first, as it is by far the most frequent; only a document
    that is not one pays for the second look."""
    try:
        return to_presence(_decoder.decode(document))
    except msgspec.DecodeError as exc:
        if not is_chat(document):
            raise InvalidEvent(str(exc)) from None
    try:
        return to_chat(_chat_decoder.decode(document))
    except msgspec.DecodeError as exc:
        raise InvalidEvent(str(exc)) from None


def parse_event(document: bytes | str) -> PresenceEvent:
    """One JSON document to a `PresenceEvent`, or `InvalidEvent` naming the field at fault."""
    try:
        raw = _decoder.decode(document)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(str(exc)) from None
    return to_presence(raw)
