"""Query parameters shared by the list endpoints and their CSV exports."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from roomlog.api.errors import INVALID_REQUEST, ApiError
from roomlog.domain.events import LATEST_AT, InvalidTime, micros_from_rfc3339, micros_from_unix
from roomlog.store.queries import MeetingFilter

Limit = Annotated[
    int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100 (default 100)")
]
UnixTime = Annotated[
    str | None,
    QueryParameter(
        description="Unix seconds (as Daily) or an RFC 3339 timestamp with an offset",
        schema_extra={
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": LATEST_AT},
                {"type": "string", "format": "date-time"},
            ],
        },
    ),
]


def instant(name: str, given: str | None) -> int | None:
    """A time parameter in µs: unix seconds (whole) or RFC 3339; a 400 naming it otherwise."""
    if given is None or given == "":
        return None
    try:
        if given.isdigit():
            return micros_from_unix(int(given))
        return micros_from_rfc3339(given)
    except InvalidTime as bad:
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"{name}: {bad}; give unix seconds (1700000000) or RFC 3339 (2023-11-14T22:13:20Z)",
        ) from None


def meeting_filter(
    room: str | None,
    timeframe_start: str | None,
    timeframe_end: str | None,
    ongoing: bool | None,
) -> MeetingFilter:
    """The filter that Daily's list parameters (unix seconds, or RFC 3339) describe."""
    return MeetingFilter(
        room=room,
        start_from=instant("timeframe_start", timeframe_start),
        start_before=instant("timeframe_end", timeframe_end),
        ongoing=ongoing,
    )
