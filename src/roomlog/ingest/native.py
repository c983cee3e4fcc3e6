"""roomlog's native event format (SESSION-RULES "Inputs") as JSON: schema, limits, parsing.

Besides presence events, a native event may be a chat message (`chat.message`), which takes
no part in the session rules: it is kept with the session of its room that it falls in.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Literal

import msgspec

from roomlog.domain.events import (
    EARLIEST_AT,
    LATEST_AT,
    MICROS,
    ROOM_ENDED,
    ROOM_SNAPSHOT,
    ChatMessage,
    InvalidTime,
    PresenceEvent,
    RoomEvent,
    micros_from_at,
)

MAX_ID: Final = 256
MAX_NAME: Final = 256
MAX_USER_FIELD: Final = 1024
MAX_TEXT: Final = 16_384
MAX_SNAPSHOT: Final = 10_000
CHAT: Final = "chat.message"
ROOM_TYPES: Final = (ROOM_ENDED, ROOM_SNAPSHOT)

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


class Listed(msgspec.Struct, forbid_unknown_fields=True):
    """One participant a snapshot saw."""

    participant_id: Name
    user_id: UserField | None = None
    user_name: UserField | None = None


class NativeRoomEvent(msgspec.Struct):
    """A room end (`room.ended`) or a snapshot (`room.snapshot`, with `participants`), as
    clients send them (SESSION-RULES step 1b)."""

    id: Id
    type: Literal["room.ended", "room.snapshot"]
    room: Name
    at: int | float | str
    participants: Annotated[list[Listed], msgspec.Meta(max_length=MAX_SNAPSHOT)] | None = None


class _Kind(msgspec.Struct):
    type: object = None


class InvalidEvent(ValueError):
    """A line or document that is not a valid native event; the message says what is wrong."""


_decoder: Final = msgspec.json.Decoder(NativeEvent)
_chat_decoder: Final = msgspec.json.Decoder(NativeChat)
_kind_decoder: Final = msgspec.json.Decoder(_Kind)
_room_decoder: Final = msgspec.json.Decoder(NativeRoomEvent)


def to_presence(raw: NativeEvent) -> PresenceEvent:
    at = _at(raw)
    return PresenceEvent(
        raw.id, raw.type, raw.room, raw.participant_id, at, raw.user_id, raw.user_name
    )


_tuple: Final = tuple.__new__


def to_presences(
    natives: list[NativeEvent],
) -> tuple[list[tuple[int, PresenceEvent]], list[tuple[int, str]]]:
    """`to_presence` of each of `natives`, made for a whole batch at a time: the events with
    their indexes, and the indexes of the others with why they are invalid. A stamp in unix
    seconds within range (nearly every one) is converted inline, and the event is built as
    the tuple it is, without a function call per event."""
    made: list[tuple[int, PresenceEvent]] = []
    invalid: list[tuple[int, str]] = []
    append = made.append
    for index, raw in enumerate(natives):
        seconds = raw.at
        at: int
        if type(seconds) is float and EARLIEST_AT <= seconds <= LATEST_AT:  # not NaN nor ±inf
            at = round(seconds * MICROS)
        elif type(seconds) is int and EARLIEST_AT <= seconds <= LATEST_AT:  # not a bool
            at = seconds * MICROS
        else:
            try:
                at = _at(raw)
            except InvalidEvent as exc:
                invalid.append((index, str(exc)))
                continue
        fields = (raw.id, raw.type, raw.room, raw.participant_id, at, raw.user_id, raw.user_name)
        append((index, _tuple(PresenceEvent, fields)))
    return made, invalid


def to_room_event(raw: NativeRoomEvent) -> RoomEvent:
    at = _at(raw)
    if raw.type == ROOM_ENDED:
        if raw.participants is not None:
            raise InvalidEvent("a room.ended event lists no participants - at `$.participants`")
        return RoomEvent(raw.id, ROOM_ENDED, raw.room, at)
    if raw.participants is None:
        raise InvalidEvent("a room.snapshot needs `participants` (a list, maybe empty)")
    ids = [p.participant_id for p in raw.participants]
    if len(set(ids)) != len(ids):
        raise InvalidEvent("`participants` lists a participant_id twice - at `$.participants`")
    people = tuple(sorted((p.participant_id, p.user_id, p.user_name) for p in raw.participants))
    return RoomEvent(raw.id, ROOM_SNAPSHOT, raw.room, at, people)


def _at(raw: NativeEvent | NativeChat | NativeRoomEvent) -> int:
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


def kind_of(document: bytes | str) -> object:
    """The `type` a JSON document (valid or not) says it has, or None."""
    try:
        return _kind_decoder.decode(document).type
    except (msgspec.DecodeError, *UNREADABLE):
        return None


def is_chat(document: bytes | str) -> bool:
    """Whether a JSON document (valid or not) says it is a chat message."""
    return kind_of(document) == CHAT


def parse_item(document: bytes | str) -> PresenceEvent | ChatMessage | RoomEvent:
    """One JSON document to a presence event, a chat message or a room-wide event, or
    `InvalidEvent`.

    The presence event is tried first, as it is by far the most frequent; only a document
    that is not one pays for the second look."""
    if isinstance(document, bytes) and document.startswith(BOM):
        document = document[3:]
    try:
        return to_presence(_decoder.decode(document))
    except msgspec.DecodeError as exc:
        kind = kind_of(document)
        if kind not in (CHAT, *ROOM_TYPES):
            raise InvalidEvent(str(exc)) from None
    except UNREADABLE as exc:
        raise InvalidEvent(unreadable(exc)) from None
    try:
        if kind == CHAT:
            return to_chat(_chat_decoder.decode(document))
        return to_room_event(_room_decoder.decode(document))
    except (msgspec.DecodeError, *UNREADABLE) as exc:
        raise InvalidEvent(unreadable(exc)) from None


BOM: Final = "\ufeff".encode()
# What msgspec raises besides `DecodeError`: bytes that are not UTF-8, and nesting deeper than
# the interpreter's recursion limit.
UNREADABLE: Final = (UnicodeDecodeError, RecursionError)


def unreadable(exc: Exception) -> str:
    """Why a document could not be read, for a client to act on."""
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"a string holds the byte 0x{exc.object[exc.start]:02x}, which is not UTF-8: send UTF-8"
        )
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply to read: events are flat objects"
    return str(exc)


def parse_event(document: bytes | str) -> PresenceEvent:
    """One JSON document to a `PresenceEvent`, or `InvalidEvent` naming the field at fault."""
    try:
        raw = _decoder.decode(document)
    except (msgspec.DecodeError, *UNREADABLE) as exc:
        raise InvalidEvent(unreadable(exc)) from None
    return to_presence(raw)
