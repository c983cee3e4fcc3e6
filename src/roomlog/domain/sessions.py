"""What a meeting session reports (SESSION-RULES step 4), independent of any API's shape."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

# Session ids are UUIDv5 names in this namespace, so a history always yields the same ids.
SESSION_NAMESPACE: Final = uuid.UUID("5b0f3d9e-6c1a-5f4e-9a43-7d2b8e1c0a61")


def session_id(tenant: str, room: str, start: int) -> str:
    """The deterministic id of the session of `tenant`'s `room` that started at `start` (µs)."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{tenant}\x1f{room}\x1f{start}"))


@dataclass(frozen=True, slots=True)
class Attendance:
    """One participant's unbroken presence inside one session. `leave` is None while present."""

    participant_id: str
    user_id: str | None
    user_name: str | None
    join: int
    leave: int | None

    def duration(self, now: int) -> int:
        return (now if self.leave is None else self.leave) - self.join


@dataclass(frozen=True, slots=True)
class MeetingSession:
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
