"""What every provider receiver shares: the request it verifies and what it maps it onto.

A receiver checks the provider's signature first and only then reads the body, so a forged
request never reaches the event log. It maps what it reads onto native presence events, plus
two things the service resolves against the event log: a room that ended (close every presence
still open in it) and, for the snapshot API, the full list of who is in a room now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from roomlog.domain.events import PresenceEvent
from roomlog.ingest.native import MAX_ID, MAX_NAME, MAX_USER_FIELD


class Forged(Exception):
    """The request's signature is missing or does not verify: nothing from it is stored."""


class Unreadable(ValueError):
    """A request whose signature verified but whose content is not what the provider sends."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One provider request as it arrived: the raw body, its headers, the URL it was sent to."""

    body: bytes
    headers: Mapping[str, str]  # names in lower case
    url: str
    received_at: int  # µs


class RoomEnd(NamedTuple):
    """Every presence open in `room` at `at` ends at `at`; `id` makes the closing idempotent."""

    id: str
    room: str
    at: int


@dataclass(slots=True)
class Mapped:
    """What a provider request means for roomlog."""

    events: list[PresenceEvent] = field(default_factory=list)
    room_ends: list[RoomEnd] = field(default_factory=list)
    # Why a verified request carried nothing to store (another event type, a test request).
    ignored: str | None = None


_HASHED_PREFIX: Final = "h:"


def derived_id(*parts: str) -> str:
    """A stable event id made of `parts`, hashed when it would exceed the id length limit."""
    joined = ":".join(parts)
    if len(joined) <= MAX_ID:
        return joined
    return _HASHED_PREFIX + hashlib.sha256(joined.encode()).hexdigest()


def body_id(provider: str, body: bytes) -> str:
    """An id for a provider that sends none: the same body delivered twice is one event."""
    return f"{provider}:{hashlib.sha256(body).hexdigest()[:32]}"


def checked(mapped: Mapped) -> Mapped:
    """`mapped`, after the limits that native events have (SESSION-RULES "Inputs")."""
    for event in mapped.events:
        _within("id", event.id, MAX_ID)
        _within("room", event.room, MAX_NAME)
        _within("participant id", event.participant_id, MAX_NAME)
        for name, value in (("user id", event.user_id), ("user name", event.user_name)):
            if value is not None and len(value) > MAX_USER_FIELD:
                raise Unreadable(f"the {name} is longer than {MAX_USER_FIELD} characters")
    for end in mapped.room_ends:
        _within("room", end.room, MAX_NAME)
    return mapped


def _within(name: str, value: str, limit: int) -> None:
    if not 1 <= len(value) <= limit:
        raise Unreadable(f"the {name} must have 1 to {limit} characters, not {len(value)}")


class Snapshot(NamedTuple):
    """Everyone in `room` at `at`, as the media server sees it: (participant_id, user_id,
    user_name) each. Presences not in it end at `at`; those missing from roomlog begin then."""

    room: str
    at: int
    people: tuple[tuple[str, str | None, str | None], ...]
