"""What a meeting session reports (SESSION-RULES step 4), independent of any API's shape."""

from __future__ import annotations

import uuid
from hashlib import sha1
from typing import Final, NamedTuple

# Session ids are UUIDv5 names in this namespace, so a history always yields the same ids.
SESSION_NAMESPACE: Final = uuid.UUID("5b0f3d9e-6c1a-5f4e-9a43-7d2b8e1c0a61")
_NAMESPACE_BYTES: Final = SESSION_NAMESPACE.bytes


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
