"""The dashboard's People and Rooms pages: attendance per person and per room over a range of
the viewer's days, with their CSVs.

Both read the sessions that the range selects (the last 30 days unless the viewer chooses
another range), so their cost is those sessions', not the history's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from anyio import to_thread
from litestar import Request, Response, get
from litestar.params import FromQuery
from litestar.response import Stream

from roomlog.api import context
from roomlog.api.dashboard.filters import Range, date_range, link, quick_ranges
from roomlog.api.dashboard.render import html_page, today, zone_of
from roomlog.api.dashboard.signin import viewer
from roomlog.api.exports import csv_response
from roomlog.domain.people import RoomTotals, Totals, percent, room_totals, totals
from roomlog.store import queries
from roomlog.store.projects import Project
from roomlog.views.exports import (
    PEOPLE_COLUMNS,
    PERSON_SESSION_COLUMNS,
    ROOM_COLUMNS,
    people_csv,
    people_rows,
    person_session_rows,
    render,
    room_rows,
)

SHOWN: Final = 200  # rows a list shows; the CSV holds them all
DEFAULT_DAYS: Final = 30


def _range(request: Request[Any, Any, Any], start: str | None, end: str | None) -> Range:
    """The range asked for; with neither `start` nor `end` in the query, the last 30 days."""
    zone = zone_of(request)
    if start is None and end is None:
        now = context.clock(request)
        start = (today(now, zone) - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
        end = today(now, zone).isoformat()
    return date_range(start, end, zone)


def _filter(chosen: Range, room: str | None = None, contains: str | None = None) -> Any:
    return queries.MeetingFilter(
        room=room or None,
        room_contains=contains or None,
        start_from=chosen.start_from,
        start_before=chosen.start_before,
    )


def _matches(found: Totals, search: str) -> bool:
    needle = search.casefold()
    return any(
        needle in (value or "").casefold()
        for value in (found.person, found.user_id, found.user_name)
    )


def _people(
    request: Request[Any, Any, Any], project: Project, where: Any, search: str, only: str | None
) -> list[Totals]:
    pages = queries.meeting_pages(context.database(request.app.state), project.id, where)
    found = totals(pages, context.clock(request), project.person_key, only, detail=bool(only))
    return [t for t in found if not search or _matches(t, search)]


def _base(request: Request[Any, Any, Any], project: Project, chosen: Range) -> dict[str, Any]:
    return {
        "project": project,
        "zone": zone_of(request),
        "now": context.clock(request),
        "problems": chosen.problems,
    }


@get("/people", include_in_schema=False)
async def people_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    room: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[str]:
    project = await viewer(request)
    chosen = _range(request, start, end)
    search = (q or "").strip()
    found = (
        []
        if chosen.problems
        else await to_thread.run_sync(
            _people, request, project, _filter(chosen, room), search, None
        )
    )
    found.sort(key=lambda t: (-t.attended, t.person))
    kept = {"q": search, "room": room or "", "start": chosen.start, "end": chosen.end}
    return html_page(
        "people.html",
        section="people",
        rows=found[:SHOWN],
        total=len(found),
        shown=SHOWN,
        filters=kept,
        ranges=quick_ranges("/people", kept, chosen, context.clock(request), zone_of(request)),
        csv_link=link("/people.csv", kept),
        **_base(request, project, chosen),
    )


@get("/people.csv", include_in_schema=False)
async def people_csv_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    room: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Stream:
    project = await viewer(request)
    chosen = _range(request, start, end)
    search = (q or "").strip()
    if search:
        found = await to_thread.run_sync(
            _people, request, project, _filter(chosen, room), search, None
        )
        return csv_response(render([PEOPLE_COLUMNS, *people_rows(found)]), "people.csv")
    pages = queries.meeting_pages(
        context.database(request.app.state), project.id, _filter(chosen, room)
    )
    chunks = people_csv(pages, context.clock(request), None, project.person_key)
    return csv_response(chunks, "people.csv")


@get("/person", include_in_schema=False)
async def person_page(
    request: Request[Any, Any, Any],
    person: FromQuery[str],
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[str]:
    project = await viewer(request)
    chosen = _range(request, start, end)
    found = (
        []
        if chosen.problems
        else await to_thread.run_sync(_people, request, project, _filter(chosen), "", person)
    )
    totalled = found[0] if found else None
    kept = {"person": person, "start": chosen.start, "end": chosen.end}
    now = context.clock(request)
    sessions = [
        {
            "session": session,
            "attended": one.attended,
            "share": round(percent(one.attended, session, now), 1),
            "devices": len(one.participant_ids),
        }
        for session, one in reversed(totalled.each if totalled else [])
    ]
    return html_page(
        "person.html",
        section="people",
        key=person,
        person=totalled,
        sessions=sessions,
        filters=kept,
        ranges=quick_ranges("/person", kept, chosen, now, zone_of(request)),
        csv_link=link("/person.csv", kept),
        **_base(request, project, chosen),
    )


@get("/person.csv", include_in_schema=False)
async def person_csv(
    request: Request[Any, Any, Any],
    person: FromQuery[str],
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Stream:
    project = await viewer(request)
    chosen = _range(request, start, end)
    found = await to_thread.run_sync(_people, request, project, _filter(chosen), "", person)
    now = context.clock(request)
    rows = [row for one in found for row in person_session_rows(one, now)]
    return csv_response(render([PERSON_SESSION_COLUMNS, *rows]), "person.csv")


def _rooms(request: Request[Any, Any, Any], project: Project, where: Any) -> list[RoomTotals]:
    pages = queries.meeting_pages(context.database(request.app.state), project.id, where)
    return room_totals(pages, context.clock(request), project.person_key)


@get("/rooms", include_in_schema=False)
async def rooms_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[str]:
    project = await viewer(request)
    chosen = _range(request, start, end)
    search = (q or "").strip()
    found = (
        []
        if chosen.problems
        else await to_thread.run_sync(_rooms, request, project, _filter(chosen, None, search))
    )
    kept = {"q": search, "start": chosen.start, "end": chosen.end}
    span = {"start": chosen.start, "end": chosen.end}
    return html_page(
        "rooms.html",
        section="rooms",
        rows=[
            {
                "room": r,
                "sessions_link": link("/sessions", {"room": r.room, **span}),
                "people_link": link("/people", {"room": r.room, **span}),
            }
            for r in found[:SHOWN]
        ],
        total=len(found),
        shown=SHOWN,
        filters=kept,
        ranges=quick_ranges("/rooms", kept, chosen, context.clock(request), zone_of(request)),
        csv_link=link("/rooms.csv", kept),
        **_base(request, project, chosen),
    )


@get("/rooms.csv", include_in_schema=False)
async def rooms_csv(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Stream:
    project = await viewer(request)
    chosen = _range(request, start, end)
    found = await to_thread.run_sync(
        _rooms, request, project, _filter(chosen, None, (q or "").strip())
    )
    return csv_response(render([ROOM_COLUMNS, *room_rows(found)]), "rooms.csv")


ROUTES: Final = (people_page, people_csv_page, person_page, person_csv, rooms_page, rooms_csv)
