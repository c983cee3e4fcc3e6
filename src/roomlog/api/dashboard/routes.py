"""The dashboard's pages: server-rendered HTML (Jinja2) with a little JavaScript.

Every page but the sign-in page needs a signed-in browser: the `roomlog_session` cookie
(HTTP-only, Secure, SameSite=Strict) holds a token from `logins`. Every query is scoped to the
signed-in project, as the API's are. Forms that change something are POSTs, and a POST whose
`Origin` is another site is refused.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from anyio import to_thread
from litestar import Request, Response, Router, get
from litestar.params import FromPath, FromQuery
from litestar.response import File, Stream

from roomlog.api import context, exports
from roomlog.api.dashboard import hooks, signin
from roomlog.api.dashboard import people as people_pages
from roomlog.api.dashboard.filters import Range, date_range, link, quick_ranges
from roomlog.api.dashboard.overview import activity, bars, first_day
from roomlog.api.dashboard.render import clock_time, html_page, zone_name, zone_of
from roomlog.api.dashboard.signin import SignInRequired, on_sign_in_required, viewer
from roomlog.domain.events import MICROS
from roomlog.domain.people import PersonKey, people, percent, person_of
from roomlog.domain.sessions import MeetingSession
from roomlog.domain.timeline import began, ended, span
from roomlog.store import queries
from roomlog.store.db import Database
from roomlog.store.projects import Project
from roomlog.store.store import Store
from roomlog.views.exports import (
    PERSON_ATTENDANCE_COLUMNS,
    render,
    session_people_rows,
    sessions_csv,
)
from roomlog.views.videosdk import active_duration

PAGE_SIZE: Final = 25
DAYS: Final = 30
# The overview's 30-day figures are summed at most this often per process and project; the
# live panel is read afresh every time.
FIGURES_FOR: Final = 5 * MICROS
STATIC: Final = Path(__file__).parent / "static"


class PageNotFound(Exception):
    pass


def on_page_not_found(_: Request[Any, Any, Any], exc: PageNotFound) -> Response[str]:
    return html_page("missing.html", status_code=404, what=str(exc), project=None)


# -- overview -----------------------------------------------------------------------------


def _live(database: Database, project: Project, now: int) -> list[dict[str, Any]]:
    with database.reader.connect() as connection:
        present = queries.presence(connection, project.id)
    rooms: dict[str, dict[str, Any]] = {}
    for person in present:
        room = rooms.setdefault(
            person.room,
            {
                "name": person.room,
                "session_id": person.session_id,
                "people": [],
                "since": person.join,
            },
        )
        room["people"].append(person.user_name or person.user_id or person.participant_id)
        room["since"] = min(room["since"], person.join)
    for room in rooms.values():
        room["people"] = list(dict.fromkeys(room["people"]))  # two devices: one person
        room["for"] = span(now - room["since"])
    return sorted(rooms.values(), key=lambda r: (-len(r["people"]), r["name"]))


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any]) -> Response[str]:
    project = await viewer(request)
    database = context.database(request.app.state)
    now = context.clock(request)
    zone = zone_of(request)

    cache: dict[tuple[int, str], tuple[int, list[queries.Activity]]] = request.app.state.setdefault(
        "overview_cache", {}
    )

    def gather() -> dict[str, Any]:
        since = first_day(now, DAYS, zone)
        key = (project.id, zone_name(zone))
        kept = cache.get(key)
        if kept is not None and since <= kept[0] <= now < kept[0] + FIGURES_FOR:
            groups = kept[1]
        else:
            with database.reader.connect() as connection:
                groups = queries.activity(connection, project.id, since, now)
            cache[key] = (now, groups)
        per_day, busiest = activity(groups, now, DAYS, zone=zone)
        return {
            "live": _live(database, project, now),
            "days": per_day,
            "session_bars": bars([(d.day, d.sessions) for d in per_day], "sessions"),
            "minute_bars": bars([(d.day, d.minutes) for d in per_day], "participant-minutes"),
            "busiest": busiest,
            "total_sessions": sum(d.sessions for d in per_day),
            "total_minutes": sum(d.minutes for d in per_day),
            "top_sessions": max((d.sessions for d in per_day), default=0),
            "top_minutes": max((d.minutes for d in per_day), default=0),
        }

    gathered = await to_thread.run_sync(gather)
    return html_page(
        "overview.html", project=project, now=now, zone=zone, section="overview", **gathered
    )


@get("/live", include_in_schema=False)
async def live(request: Request[Any, Any, Any]) -> Response[str]:
    project = await viewer(request)
    rooms = await to_thread.run_sync(
        _live, context.database(request.app.state), project, context.clock(request)
    )
    return html_page("_live.html", live=rooms)


# -- sessions -----------------------------------------------------------------------------


def _persons(session: MeetingSession, by: PersonKey) -> int:
    return len({person_of(r, by) for r in session.participants})


@get("/sessions", include_in_schema=False)
async def sessions_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    room: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
    before: FromQuery[str | None] = None,
) -> Response[str]:
    project = await viewer(request)
    database = context.database(request.app.state)
    now = context.clock(request)
    zone = zone_of(request)
    chosen = date_range(start, end, zone)
    problems = chosen.problems
    if status not in (None, "", "ongoing", "ended"):
        problems.append(f"Status: {status!r} is not one of any, ongoing, ended")
    search = (q or "").strip()
    where = _sessions_filter(chosen, room, search, status)

    def gather() -> dict[str, Any]:
        with database.reader.connect() as connection:
            try:
                found = queries.list_meetings(
                    connection, project.id, where, PAGE_SIZE + 1, after or None, before or None
                )
            except queries.UnknownCursor:
                problems.append("That page is no longer there; showing the newest sessions.")
                found = queries.list_meetings(connection, project.id, where, PAGE_SIZE + 1)
            total = queries.count_meetings(connection, project.id, where)
            names = queries.room_names(connection, project.id)
        more = len(found) > PAGE_SIZE
        if before and not after:  # a page going back: the extra row is the oldest
            page = found[-PAGE_SIZE:]
            newer, older = more, True
        else:
            page = found[:PAGE_SIZE]
            newer, older = bool(after), more
        return {"page": page, "total": total, "rooms": names, "newer": newer, "older": older}

    gathered: dict[str, Any] = (
        await to_thread.run_sync(gather)
        if not problems
        else {"page": [], "total": 0, "rooms": [], "newer": False, "older": False}
    )
    filters = {
        "q": search,
        "room": room or "",
        "start": chosen.start,
        "end": chosen.end,
        "status": status or "",
    }
    page: list[MeetingSession] = gathered["page"]
    links = {
        "newer": link("/sessions", {**filters, "before": page[0].id})
        if page and gathered["newer"]
        else None,
        "older": link("/sessions", {**filters, "after": page[-1].id})
        if page and gathered["older"]
        else None,
        "csv": link("/sessions.csv", filters),
        "without_room": link("/sessions", {**filters, "room": ""}),
    }
    rows = [
        {
            "session": s,
            "duration": span(s.duration(now)),
            "people": _persons(s, project.person_key),
        }
        for s in page
    ]
    return html_page(
        "sessions.html",
        project=project,
        section="sessions",
        zone=zone,
        now=now,
        rows=rows,
        total=gathered["total"],
        rooms=gathered["rooms"],
        filters=filters,
        ranges=quick_ranges("/sessions", filters, chosen, now, zone),
        links=links,
        problems=problems,
    )


def _sessions_filter(
    chosen: Range, room: str | None, search: str, status: str | None
) -> queries.MeetingFilter:
    return queries.MeetingFilter(
        room=room or None,
        room_contains=search or None,
        start_from=chosen.start_from,
        start_before=chosen.start_before,
        ongoing={"ongoing": True, "ended": False}.get(status or ""),
    )


@get("/sessions.csv", include_in_schema=False)
async def sessions_csv_page(
    request: Request[Any, Any, Any],
    q: FromQuery[str | None] = None,
    room: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
) -> Stream:
    project = await viewer(request)
    chosen = date_range(start, end, zone_of(request))
    where = _sessions_filter(chosen, room, (q or "").strip(), status)
    pages = queries.meeting_pages(context.database(request.app.state), project.id, where)
    return exports.csv_response(sessions_csv(pages, context.clock(request)), "sessions.csv")


def _session(database: Database, project: Project, session_id: FromPath[str]) -> MeetingSession:
    with database.reader.connect() as connection:
        found = queries.get_meeting(connection, project.id, session_id)
    if found is None:
        raise PageNotFound(f"No session {session_id!r} in this project.")
    return found


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 3) if whole > 0 else 0.0


def _tracks(session: MeetingSession, now: int, by: PersonKey, zone: tzinfo) -> list[Any]:
    """One row per person: their presences as bars, in lanes where two overlap (two devices)."""
    length = max((now if session.end is None else session.end) - session.start, 1)
    tracks = []
    for person in people(session, now, by):
        own = sorted(
            (r for r in session.participants if person_of(r, by) == person.person),
            key=lambda r: (r.join, r.participant_id),
        )
        lanes: list[int] = []  # where each lane's last bar ends
        bars = []
        for r in own:
            finish = now if r.leave is None else r.leave
            lane = next((n for n, e in enumerate(lanes) if e <= r.join), len(lanes))
            if lane == len(lanes):
                lanes.append(finish)
            else:
                lanes[lane] = finish
            until = "still here" if r.leave is None else clock_time(r.leave, zone)
            tip = f"{clock_time(r.join, zone)} → {until} ({span(finish - r.join)})"
            bars.append(
                {
                    "left": _percent(r.join - session.start, length),
                    "width": max(_percent(finish - r.join, length), 0.4),
                    "lane": lane,
                    "open": r.leave is None,
                    "tip": f"{tip} · {r.participant_id}",
                }
            )
        tracks.append(
            {
                "who": person.user_name or person.person,
                "person": person.person,
                "lanes": len(lanes),
                "bars": bars,
            }
        )
    return tracks


@get("/sessions/{session_id:str}", include_in_schema=False)
async def session_page(request: Request[Any, Any, Any], session_id: FromPath[str]) -> Response[str]:
    project = await viewer(request)
    database = context.database(request.app.state)
    now = context.clock(request)
    zone = zone_of(request)
    store: Store = request.app.state.store
    rules = store.settings.rules

    def gather() -> dict[str, Any]:
        session = _session(database, project, session_id)
        with database.reader.connect() as connection:
            previous, following = queries.neighbours(connection, project.id, session)
            messages = queries.chat(connection, project.id, session)
        return {
            "session": session,
            "previous": previous,
            "following": following,
            "began": began(session, rules, None if previous is None else previous.at),
            "ended": ended(session, rules, None if following is None else following.at),
            "messages": messages,
        }

    gathered = await to_thread.run_sync(gather)
    session: MeetingSession = gathered["session"]
    previous: queries.Neighbour | None = gathered["previous"]
    following: queries.Neighbour | None = gathered["following"]
    length = max((now if session.end is None else session.end) - session.start, 1)
    ticks = [
        {"left": 100 * n / 4, "label": clock_time(session.start + length * n // 4, zone)}
        for n in range(5)
    ]
    markers = [
        {"left": _percent(moment.at - session.start, length), "label": label, "moment": moment}
        for label, moment in (("began", gathered["began"]), ("ended", gathered["ended"]))
        if moment is not None
    ]
    everyone = people(session, now, project.person_key)
    names = {r.participant_id: r.user_name for r in session.participants}
    chat_link = None
    if gathered["messages"]:
        chat_link = exports.chat_links(request, project, {session.id}, now).get(session.id)
    return html_page(
        "session.html",
        project=project,
        section="sessions",
        zone=zone,
        session=session,
        now=now,
        duration=session.duration(now),
        active=active_duration(session.participants, now) * MICROS,
        began=gathered["began"],
        ended=gathered["ended"],
        split_from=previous if previous is not None and previous.at == session.start else None,
        split_into=following if following is not None and following.at == session.end else None,
        previous=previous,
        following=following,
        tracks=_tracks(session, now, project.person_key, zone),
        ticks=ticks,
        markers=markers,
        attendance=[
            {"p": p, "share": round(percent(p.attended, session, now), 1)} for p in everyone
        ],
        connections=len({r.participant_id for r in session.participants}),
        messages=[(m, m.user_name or names.get(m.participant_id)) for m in gathered["messages"]],
        chat_link=chat_link,
        attendance_link=f"/sessions/{quote(session.id, safe='')}/attendance.csv",
    )


@get("/sessions/{session_id:str}/attendance.csv", include_in_schema=False)
async def session_attendance_csv(
    request: Request[Any, Any, Any], session_id: FromPath[str]
) -> Stream:
    project = await viewer(request)
    session = await to_thread.run_sync(
        _session, context.database(request.app.state), project, session_id
    )
    rows = session_people_rows(session, context.clock(request), project.person_key)
    return exports.csv_response(
        render([PERSON_ATTENDANCE_COLUMNS, *rows]), f"attendance-{session.id}.csv"
    )


_ASSETS: Final = {
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def _file(name: str) -> File:
    if name not in _ASSETS:
        raise PageNotFound(f"No asset {name!r}.")
    return File(
        STATIC / name,
        media_type=_ASSETS[name],
        content_disposition_type="inline",
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def asset(name: FromPath[str]) -> File:
    return _file(name)


@get("/favicon.ico", include_in_schema=False, sync_to_thread=False)
def favicon() -> File:
    """Browsers ask for `/favicon.ico` whatever the page says: the same icon, as SVG."""
    return _file("icon.svg")


def router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            overview,
            live,
            *signin.ROUTES,
            sessions_page,
            sessions_csv_page,
            session_page,
            session_attendance_csv,
            *people_pages.ROUTES,
            *hooks.ROUTES,
            asset,
            favicon,
        ],
        exception_handlers={
            SignInRequired: on_sign_in_required,
            PageNotFound: on_page_not_found,
        },
    )
