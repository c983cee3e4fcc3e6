"""Attendance per person over many sessions: `GET /v1/attendance`."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from roomlog.api import context
from roomlog.api.errors import ERRORS
from roomlog.api.params import UnixTime, meeting_filter
from roomlog.domain.people import totals
from roomlog.store import queries
from roomlog.store.projects import Project
from roomlog.views.people import PersonTotals, totals_object

People = Annotated[
    int, QueryParameter(ge=1, le=1_000, description="Page size, 1 to 1,000 (default 100)")
]


class PeopleList(msgspec.Struct):
    total_count: int
    data: list[PersonTotals]


@get(
    "/v1/attendance",
    summary="Attendance per person over many sessions",
    description=(
        "One record per person (the `user_id` the joins carry, else the `participant_id`) "
        "over the sessions that `room`, `timeframe_start` and `timeframe_end` select (unix "
        "seconds or RFC 3339; sessions that started in the range), by person key. `person` "
        "keeps one person; `starting_after` and `ending_before` take a person key from a "
        "previous page. "
        "Each record counts the sessions, the seconds attended (each session's union of "
        "presences, summed), when the person was first and last seen; with `detail=true`, "
        "each session with its seconds and share. `total_count` counts every person that "
        "matches, whatever the cursor."
    ),
    sync_to_thread=False,
    responses=ERRORS,
    tags=["meetings"],
)
def list_attendance(
    project: NamedDependency[Project],
    state: State,
    request: Request[Any, Any, Any],
    room: FromQuery[str | None] = None,
    timeframe_start: UnixTime = None,
    timeframe_end: UnixTime = None,
    person: FromQuery[str | None] = None,
    limit: People = 100,
    starting_after: FromQuery[str | None] = None,
    ending_before: FromQuery[str | None] = None,
    detail: FromQuery[bool] = False,
) -> PeopleList:
    now = context.clock(request)
    where = meeting_filter(room, timeframe_start, timeframe_end, None)
    # The sessions the filter selects, a page at a time: the cost is theirs, not the history's.
    pages = queries.meeting_pages(context.database(state), project.id, where)
    everyone = totals(pages, now, project.person_key, person, detail)
    chosen = [
        t
        for t in everyone
        if (starting_after is None or t.person > starting_after)
        and (ending_before is None or t.person < ending_before)
    ]
    # Before a cursor, the page is the one just before it.
    page = (
        chosen[-limit:] if ending_before is not None and starting_after is None else chosen[:limit]
    )
    return PeopleList(len(everyone), [totals_object(t, now, detail) for t in page])


ROUTES: Final = (list_attendance,)
