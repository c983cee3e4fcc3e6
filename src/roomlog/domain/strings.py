"""What roomlog does with the strings it is given, on every way in (docs/API.md, "Strings").

- U+0000 (NUL) cannot be stored by PostgreSQL and cuts SQLite's JSON functions short. In
  what identifies something (an event's `id`, `room`, `participant_id`, `user_id`) it is
  refused: the item is rejected, naming the field. In free text that end users type (a
  `user_name`, a chat message's `text`) it is replaced by U+FFFD and the item kept.
- A room name loses the white space around it (so `"standup "` is the room `"standup"`); a
  blank one is refused.
- Every other character, control characters included, is stored as given and escaped on the
  way out (JSON, HTML, CSV).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import eq, itemgetter
from typing import Final

from roomlog.domain.events import ChatMessage, PresenceEvent, RoomEvent

NUL: Final = "\x00"
REPLACEMENT: Final = "\ufffd"


class Refused(ValueError):
    """A string an item cannot be stored with; the message names the field."""


def room_name(name: str, field: str = "room") -> str:
    """`name` as a room's name: trimmed; `Refused` if blank or holding U+0000."""
    if NUL in name:
        raise Refused(f"`{field}` contains U+0000 (NUL), which roomlog does not store")
    if name[:1].isspace() or name[-1:].isspace():
        name = name.strip()
    if not name:
        raise Refused(f"`{field}` is blank: name the room")
    return name


def _identifier(value: str | None, field: str) -> None:
    if value is not None and NUL in value:
        raise Refused(f"`{field}` contains U+0000 (NUL), which roomlog does not store")


def _text(value: str | None) -> str | None:
    return value.replace(NUL, REPLACEMENT) if value is not None and NUL in value else value


def presence(event: PresenceEvent) -> PresenceEvent:
    """`event` as stored: see the module's rules; `Refused` names the field at fault."""
    room = room_name(event.room)
    _identifier(event.id, "id")
    _identifier(event.participant_id, "participant_id")
    _identifier(event.user_id, "user_id")
    user_name = _text(event.user_name)
    if room is event.room and user_name is event.user_name:
        return event
    return event._replace(room=room, user_name=user_name)


_IDENTIFIERS: Final = tuple(itemgetter(i) for i in (0, 2, 3))  # id, room, participant_id
_OPTIONAL: Final = tuple(itemgetter(i) for i in (5, 6))  # user_id, user_name
_ROOM: Final = itemgetter(2)


def all_kept(events: Sequence[PresenceEvent]) -> bool:
    """Whether `presence` keeps every one of `events` as it is (no U+0000 anywhere, no room
    to trim): checked for a whole batch at once, column by column. Where it is false, each
    event goes through `presence`, which says which field is at fault."""
    rooms = list(map(_ROOM, events))
    if not all(rooms) or not all(map(eq, rooms, map(str.strip, rooms))):
        return False
    for column in _IDENTIFIERS:
        if NUL in "".join(map(column, events)):
            return False
    return all(NUL not in "".join(filter(None, map(column, events))) for column in _OPTIONAL)


def chat(message: ChatMessage) -> ChatMessage:
    room = room_name(message.room)
    _identifier(message.id, "id")
    _identifier(message.participant_id, "participant_id")
    text = message.text.replace(NUL, REPLACEMENT)
    return message._replace(room=room, text=text, user_name=_text(message.user_name))


def room_event(event: RoomEvent) -> RoomEvent:
    room = room_name(event.room)
    _identifier(event.id, "id")
    people = []
    for n, (pid, uid, name) in enumerate(event.people):
        _identifier(pid, f"participants[{n}].participant_id")
        _identifier(uid, f"participants[{n}].user_id")
        people.append((pid, uid, _text(name)))
    return event._replace(room=room, people=tuple(people))
