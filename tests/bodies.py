"""Event bodies for the API tests."""

from __future__ import annotations

import itertools
from typing import Any

from tests.fixtures import T0

_serial = itertools.count()


def joined(pid: str, at: float, room: str = "r", user: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"ev-{next(_serial)}",
        "type": "participant.joined",
        "room": room,
        "participant_id": pid,
        "at": T0 + at,
    }
    if user is not None:
        body["user_id"] = user
        body["user_name"] = user.title()
    return body


def left(pid: str, at: float, room: str = "r") -> dict[str, Any]:
    return {
        "id": f"ev-{next(_serial)}",
        "type": "participant.left",
        "room": room,
        "participant_id": pid,
        "at": T0 + at,
    }
