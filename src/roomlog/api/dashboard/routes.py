"""The dashboard's pages: server-rendered HTML (Jinja2) with a little JavaScript.

Every page but the sign-in page needs a signed-in browser: the `roomlog_session` cookie
(HTTP-only, Secure, SameSite=Strict) holds a token from `logins`. Every query is scoped to the
signed-in project, as the API's are. Forms that change something are POSTs, and a POST whose
`Origin` is another site is refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

from anyio import to_thread
from litestar import Request, Response, Router, get
from litestar.params import FromPath, FromQuery
from litestar.response import File, Stream

from roomlog.api import context, exports
from roomlog.api.dashboard import signin
from roomlog.api.dashboard.overview import activity, bars, first_day
from roomlog.api.dashboard.render import clock_time, html_page
from roomlog.api.dashboard.signin import SignInRequired, on_sign_in_required, viewer
from roomlog.domain.attendance import attendees, share
from roomlog.domain.events import MICROS
from roomlog.domain.sessions import MeetingSession
from roomlog.domain.timeline import began, ended, span
from roomlog.store import queries
from roomlog.store.db import Database
from roomlog.store.projects import Project
from roomlog.store.store import Store
from roomlog.views.exports import ATTENDANCE_COLUMNS, attendance_rows, render
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
    with database.engine.connect() as connection:
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
        room["people"].append(person.user_name or person.participant_id)
        room["since"] = min(room["since"], person.join)
    for room in rooms.values():
        room["for"] = span(now - room["since"])
    return sorted(rooms.values(), key=lambda r: (-len(r["people"]), r["name"]))


@get("/", include_in_schema=False)
async def overview(request: Request[Any, Any, Any]) -> Response[str]:
    project = await viewer(request)
    database = context.database(request.app.state)
    now = context.clock(request)

    cache: dict[int, tuple[int, list[queries.Activity]]] = request.app.state.setdefault(
        "overview_cache", {}
    )

    def gather() -> dict[str, Any]:
        since = first_day(now, DAYS)
        kept = cache.get(project.id)
        if kept is not None and since <= kept[0] <= now < kept[0] + FIGURES_FOR:
            groups = kept[1]
        else:
            with database.engine.connect() as connection:
                groups = queries.activity(connection, project.id, since, now)
            cache[project.id] = (now, groups)
        per_day, busiest = activity(groups, now, DAYS)
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
    return html_page("overview.html", project=project, now=now, section="overview", **gathered)


@get("/live", include_in_schema=False)
async def live(request: Request[Any, Any, Any]) -> Response[str]:
    project = await viewer(request)
    rooms = await to_thread.run_sync(
        _live, context.database(request.app.state), project, context.clock(request)
    )
    return html_page("_live.html", live=rooms)


# -- sessions -----------------------------------------------------------------------------


def _day(value: str | None, name: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
        return None


def _micros(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * MICROS


@get("/sessions", include_in_schema=False)
async def sessions_page(
    request: Request[Any, Any, Any],
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
    problems: list[str] = []
    first = _day(start, "From", problems)
    last = _day(end, "To", problems)
    if status not in (None, "", "ongoing", "ended"):
        problems.append(f"Status: {status!r} is not one of any, ongoing, ended")
    where = queries.MeetingFilter(
        room=room or None,
        start_from=None if first is None else _micros(first),
        start_before=None if last is None else _micros(last + timedelta(days=1)),
        ongoing={"ongoing": True, "ended": False}.get(status or ""),
    )

    def gather() -> dict[str, Any]:
        with database.engine.connect() as connection:
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
    filters = {"room": room or "", "start": start or "", "end": end or "", "status": status or ""}
    kept = {k: v for k, v in filters.items() if v}
    page: list[MeetingSession] = gathered["page"]
    links = {
        "newer": f"/sessions?{urlencode({**kept, 'before': page[0].id})}"
        if page and gathered["newer"]
        else None,
        "older": f"/sessions?{urlencode({**kept, 'after': page[-1].id})}"
        if page and gathered["older"]
        else None,
    }
    rows = [
        {
            "session": s,
            "duration": span(s.duration(now)),
            "people": len({r.participant_id for r in s.participants}),
        }
        for s in page
    ]
    return html_page(
        "sessions.html",
        project=project,
        section="sessions",
        rows=rows,
        total=gathered["total"],
        rooms=gathered["rooms"],
        filters=filters,
        links=links,
        problems=problems,
    )


def _session(database: Database, project: Project, session_id: FromPath[str]) -> MeetingSession:
    with database.engine.connect() as connection:
        found = queries.get_meeting(connection, project.id, session_id)
    if found is None:
        raise PageNotFound(f"No session {session_id!r} in this project.")
    return found


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 3) if whole > 0 else 0.0


@get("/sessions/{session_id:str}", include_in_schema=False)
async def session_page(request: Request[Any, Any, Any], session_id: FromPath[str]) -> Response[str]:
    project = await viewer(request)
    database = context.database(request.app.state)
    now = context.clock(request)
    store: Store = request.app.state.store
    rules = store.settings.rules

    def gather() -> dict[str, Any]:
        session = _session(database, project, session_id)
        with database.engine.connect() as connection:
            previous_end, next_start = queries.neighbours(connection, project.id, session)
            chatty = queries.with_chat(connection, project.id, [session])
        return {
            "session": session,
            "began": began(session, rules, previous_end),
            "ended": ended(session, rules, next_start),
            "chatty": chatty,
        }

    gathered = await to_thread.run_sync(gather)
    session: MeetingSession = gathered["session"]
    finish = now if session.end is None else session.end
    length = max(finish - session.start, 1)
    people = attendees(session, now)
    tracks = []
    for person in people:
        records = [r for r in session.participants if r.participant_id == person.participant_id]
        tracks.append(
            {
                "who": person.user_name or person.participant_id,
                "participant_id": person.participant_id,
                "bars": [
                    {
                        "left": _percent(r.join - session.start, length),
                        "width": max(_percent(r.duration(now), length), 0.4),
                        "join": r.join,
                        "leave": r.leave,
                        "length": r.duration(now),
                    }
                    for r in sorted(records, key=lambda r: r.join)
                ],
            }
        )
    ticks = [
        {"left": 100 * n / 4, "label": clock_time(session.start + length * n // 4)}
        for n in range(5)
    ]
    markers = [
        {"left": _percent(moment.at - session.start, length), "label": label, "moment": moment}
        for label, moment in (("began", gathered["began"]), ("ended", gathered["ended"]))
        if moment is not None
    ]
    chat_link = exports.chat_links(request, project, gathered["chatty"], now).get(session.id)
    return html_page(
        "session.html",
        project=project,
        section="sessions",
        session=session,
        now=now,
        duration=session.duration(now),
        active=active_duration(session.participants, now) * MICROS,
        began=gathered["began"],
        ended=gathered["ended"],
        tracks=tracks,
        ticks=ticks,
        markers=markers,
        attendance=[{"a": a, "share": round(100 * share(a, session, now), 1)} for a in people],
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
    rows = attendance_rows(session, context.clock(request))
    return exports.csv_response(render([ATTENDANCE_COLUMNS, *rows]), f"attendance-{session.id}.csv")


_ASSETS: Final = {
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def asset(name: FromPath[str]) -> File:
    if name not in _ASSETS:
        raise PageNotFound(f"No asset {name!r}.")
    return File(
        STATIC / name,
        media_type=_ASSETS[name],
        content_disposition_type="inline",
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


def router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            overview,
            live,
            *signin.ROUTES,
            sessions_page,
            session_page,
            session_attendance_csv,
            asset,
        ],
        exception_handlers={
            SignInRequired: on_sign_in_required,
            PageNotFound: on_page_not_found,
        },
    )
