"""Small builders shared by the tests: events in whole seconds, sessions in whole seconds."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from httpx import Response
from hypothesis import strategies as st

from roomlog.domain.events import JOINED, LEFT, MICROS, PresenceEvent
from roomlog.domain.sessions import MeetingSession

_ids = itertools.count()


def join(pid: str, at: float, room: str = "r", user_id: str | None = None) -> PresenceEvent:
    return PresenceEvent(f"e{next(_ids)}", JOINED, room, pid, round(at * MICROS), user_id, None)


def leave(pid: str, at: float, room: str = "r") -> PresenceEvent:
    return PresenceEvent(f"e{next(_ids)}", LEFT, room, pid, round(at * MICROS))


Shape = tuple[float, float | None, int, list[tuple[str, float, float | None]]]


def shape(session: MeetingSession) -> Shape:
    """A session in seconds: (start, end, max_participants, [(pid, join, leave)])."""

    def sec(micros: int | None) -> float | None:
        return None if micros is None else micros / MICROS

    return (
        session.start / MICROS,
        sec(session.end),
        session.max_participants,
        [(a.participant_id, a.join / MICROS, sec(a.leave)) for a in session.participants],
    )


@st.composite
def histories(
    draw: st.DrawFn,
    rooms: Sequence[str] = ("r",),
    participants: str = "ABCD",
    latest: int = 60 * MICROS,
    step: int = MICROS,
    most: int = 24,
    user_ids: Sequence[str | None] = (None,),
) -> list[PresenceEvent]:
    """Up to `most` events at multiples of `step` µs in `[0, latest]`, in the order they arrive."""
    n = draw(st.integers(min_value=0, max_value=most))
    return [
        PresenceEvent(
            id=f"e{i}",
            type=draw(st.sampled_from([JOINED, LEFT])),
            room=draw(st.sampled_from(rooms)),
            participant_id=draw(st.sampled_from(participants)),
            at=draw(st.integers(min_value=0, max_value=latest // step)) * step,
            user_id=draw(st.sampled_from(user_ids)),
        )
        for i in range(n)
    ]


def error_of(answer: Response) -> dict[str, Any]:
    """An error answer's body without its `request_id`, once that is checked to be the id the
    answer's `X-Request-Id` header carries."""
    body: dict[str, Any] = answer.json()
    assert body.pop("request_id") == answer.headers["x-request-id"]
    return body
