"""What a meeting session reports (SESSION-RULES step 4), independent of any API's shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import lru_cache
from hashlib import sha1
from typing import Any, Final, NamedTuple

import numpy as np

# Session ids are UUIDv5 names in this namespace, so a history always yields the same ids.
SESSION_NAMESPACE: Final = uuid.UUID("5b0f3d9e-6c1a-5f4e-9a43-7d2b8e1c0a61")
_NAMESPACE_BYTES: Final = SESSION_NAMESPACE.bytes


@lru_cache(maxsize=65_536)  # a room's read names its sessions again at every event
def session_id(tenant: str, room: str, start: int) -> str:
    """The id of `tenant`'s session in `room` that started at `start` (µs): a UUIDv5.

    The same as `str(uuid.uuid5(SESSION_NAMESPACE, f"{tenant}\\x1f{room}\\x1f{start}"))`,
    computed without building a `uuid.UUID`, which costs more than the hash itself.
    """
    name = f"{tenant}\x1f{room}\x1f{start}".encode()
    raw = bytearray(sha1(_NAMESPACE_BYTES + name).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Attendance(NamedTuple):
    """One participant's unbroken presence inside one session. `leave` is None while present."""

    participant_id: str
    user_id: str | None
    user_name: str | None
    join: int
    leave: int | None

    def duration(self, now: int) -> int:
        return (now if self.leave is None else self.leave) - self.join


class MeetingSession(NamedTuple):
    """A meeting session; `end` is None while it is ongoing. Times are microseconds."""

    id: str
    room: str
    start: int
    end: int | None
    max_participants: int
    participants: tuple[Attendance, ...]

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def duration(self, now: int) -> int:
        return (now if self.end is None else self.end) - self.start


def session_ids(tenant: str, rooms: Iterable[str], starts: Iterable[int]) -> list[str]:
    """`session_id` of many sessions: each room's part of the name is hashed once, and the
    version bits and the text form are set for all of them at once."""
    prefixes: dict[str, Any] = {}
    digests = []
    for room, start in zip(rooms, starts, strict=True):
        prefix = prefixes.get(room)
        if prefix is None:
            prefix = prefixes[room] = sha1(_NAMESPACE_BYTES + f"{tenant}\x1f{room}\x1f".encode())
        digest = prefix.copy()
        digest.update(b"%d" % start)
        digests.append(digest.digest())
    raw = np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    chars = np.full((len(raw), 36), ord("-"), np.uint8)
    chars[:, _HIGH] = _HEX[raw >> 4]
    chars[:, _LOW] = _HEX[raw & 0x0F]
    text = chars.tobytes().decode("ascii")
    return [text[i : i + 36] for i in range(0, len(text), 36)]


# Where the hex digits of the 16 bytes go in the 36 characters of a UUID's text form.
_DIGITS: Final = [c for c in range(36) if c not in (8, 13, 18, 23)]
_HIGH: Final = _DIGITS[0::2]
_LOW: Final = _DIGITS[1::2]
_HEX: Final = np.frombuffer(b"0123456789abcdef", np.uint8)
