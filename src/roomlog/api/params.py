"""Query parameters shared by the list endpoints and their CSV exports."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from roomlog.domain.events import LATEST_AT, MICROS
from roomlog.store.queries import MeetingFilter

Limit = Annotated[
    int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100 (default 100)")
]
UnixTime = Annotated[int | None, QueryParameter(ge=0, le=LATEST_AT)]


def meeting_filter(
    room: str | None,
    timeframe_start: int | None,
    timeframe_end: int | None,
    ongoing: bool | None,
) -> MeetingFilter:
    """The filter that Daily's list parameters (unix seconds) describe."""
    return MeetingFilter(
        room=room,
        start_from=None if timeframe_start is None else timeframe_start * MICROS,
        start_before=None if timeframe_end is None else timeframe_end * MICROS,
        ongoing=ongoing,
    )
