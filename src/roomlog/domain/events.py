"""Presence events (SESSION-RULES "Inputs") and the exact time scale the engine computes on.

Times are integer microseconds since the Unix epoch: exact arithmetic, no float rounding at the
30-second and 10-minute boundaries, and finer than the millisecond SESSION-RULES asks for.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, Literal, NamedTuple

MICROS: Final = 1_000_000
JOINED: Final = "participant.joined"
LEFT: Final = "participant.left"
EventType = Literal["participant.joined", "participant.left"]

# Unix seconds accepted for `at`: the Unix epoch up to the end of year 9999.
EARLIEST_AT: Final = 0
LATEST_AT: Final = 253_402_300_799


class PresenceEvent(NamedTuple):
    """One participant joining or leaving one room at one instant (`at`, in microseconds)."""

    id: str
    type: EventType
    room: str
    participant_id: str
    at: int
    user_id: str | None = None
    user_name: str | None = None


ROOM_ENDED: Final = "room.ended"
ROOM_SNAPSHOT: Final = "room.snapshot"
RoomEventType = Literal["room.ended", "room.snapshot"]
# Who a snapshot lists: (participant_id, user_id, user_name).
Listed = tuple[str, str | None, str | None]


class RoomEvent(NamedTuple):
    """A room-wide event (SESSION-RULES step 1b) at one instant (`at`, in microseconds).

    A room end closes every presence open at `at`; a snapshot closes those it does not list
    (`people`) and opens those it lists that are absent. Both take effect after the joins and
    leaves stamped at `at`, whenever they arrive.
    """

    id: str
    type: RoomEventType
    room: str
    at: int
    people: tuple[Listed, ...] = ()  # a snapshot's, sorted by participant id


class ChatMessage(NamedTuple):
    """One chat message sent in one room at one instant (`at`, in microseconds)."""

    id: str
    room: str
    participant_id: str
    at: int
    text: str
    user_name: str | None = None


class InvalidTime(ValueError):
    """An `at` value that is not a usable instant; the message says why."""


def micros_from_unix(seconds: float) -> int:
    """Unix seconds (int or float) to integer microseconds; NaN and out of range are refused."""
    if isinstance(seconds, bool) or not math.isfinite(seconds):
        raise InvalidTime(f"expected unix seconds, got {seconds!r}")
    if not EARLIEST_AT <= seconds <= LATEST_AT:
        for unit, per_second in (("milliseconds", 1_000), ("microseconds", MICROS)):
            if EARLIEST_AT < seconds / per_second <= LATEST_AT and seconds / per_second > 1e8:
                raise InvalidTime(
                    f"{seconds!r} looks like {unit}: `at` is in seconds, so divide it by"
                    f" {per_second:,} (fractions are kept, to the microsecond)"
                )
        raise InvalidTime(f"unix seconds {seconds!r} are outside 1970-01-01 .. 9999-12-31")
    if isinstance(seconds, int):
        return seconds * MICROS
    return round(seconds * MICROS)


def micros_from_rfc3339(text: str) -> int:
    """An RFC 3339 timestamp with a UTC offset (`2021-10-19T07:55:35.807Z`) to microseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(f"{text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise InvalidTime(f"{text!r} has no UTC offset; add 'Z' or '+00:00'")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    if delta.days < 0:
        raise InvalidTime(f"{text!r} is before 1970-01-01")
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def micros_from_at(at: float | str) -> int:
    """`at` as SESSION-RULES allows it: unix seconds (int or float) or RFC 3339."""
    if isinstance(at, str):
        return micros_from_rfc3339(at)
    return micros_from_unix(at)


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}"


def rfc3339(micros: int) -> str:
    """Microseconds to RFC 3339 in UTC with milliseconds, as VideoSDK writes times."""
    return f"{_second(micros // MICROS)}.{micros % MICROS // 1000:03d}Z"
