"""How the dashboard renders: its Jinja2 templates, their filters, the viewer's time zone,
and a page's headers.

Times are shown in the viewer's time zone: the browser names it in the `roomlog_tz` cookie
(`app.js` sets it from `Intl`, or to `UTC` when the viewer switches to UTC), and every page
renders its times, date filters and per-day charts in that zone. Without the cookie, or with
a zone this machine does not know, times are UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from litestar import MediaType, Request, Response
from markupsafe import Markup, escape

from roomlog.domain.events import MICROS, rfc3339
from roomlog.domain.timeline import span

ZONE_COOKIE: Final = "roomlog_tz"
MAX_ZONE_NAME: Final = 64


@cache
def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("roomlog.api.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["at"] = _at
    environment.filters["ago"] = _ago
    environment.filters["span"] = lambda micros: span(max(micros, 0))
    environment.filters["iso"] = rfc3339
    environment.filters["day"] = lambda value: f"{value:%a %d %b}"
    return environment


@cache
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_of(request: Request[Any, Any, Any]) -> tzinfo:
    """The viewer's time zone, from the `roomlog_tz` cookie; UTC without one."""
    name = request.cookies.get(ZONE_COOKIE, "")
    if not name or len(name) > MAX_ZONE_NAME or name in ("UTC", "Etc/UTC"):
        return UTC
    return _zone(name)


def zone_name(zone: tzinfo) -> str:
    return "UTC" if zone is UTC else str(zone)


def local(micros: int, zone: tzinfo = UTC) -> datetime:
    return datetime.fromtimestamp(micros // MICROS, tz=UTC).astimezone(zone)


def when(micros: int, zone: tzinfo = UTC) -> str:
    """An instant as the dashboard shows it: in `zone`, to the second."""
    return f"{local(micros, zone):%Y-%m-%d %H:%M:%S}"


def exact(micros: int, zone: tzinfo = UTC) -> str:
    """An instant to the millisecond, with its offset: for tooltips."""
    moment = local(micros, zone)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{micros % MICROS // 1000:03d} {moment:%Z} (UTC{moment:%z})"


def clock_time(micros: int, zone: tzinfo = UTC) -> str:
    return f"{local(micros, zone):%H:%M:%S}"


def today(now: int, zone: tzinfo) -> date:
    return local(now, zone).date()


def day_start(day: date, zone: tzinfo) -> int:
    """The first instant (µs) of `day` in `zone`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * MICROS


def relative(micros: int, now: int) -> str:
    """`micros` as people say it from `now`: `just now`, `12 min ago`, `3 h ago`, `in 5 min`."""
    seconds = (now - micros) // MICROS
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{seconds // size} {unit}"
            break
    else:  # pragma: no cover - 45 s and more is at least a minute
        amount = f"{seconds} s"
    return f"in {amount}" if ahead else f"{amount} ago"


def _context_zone(context: Context) -> tzinfo:
    zone = context.get("zone")
    return zone if isinstance(zone, tzinfo) else UTC


@pass_context
def _when(context: Context, micros: int) -> str:
    return when(micros, _context_zone(context))


@pass_context
def _at(context: Context, micros: int) -> Markup:
    """A `<time>` element: the instant in the viewer's zone to the second, exact in its title."""
    zone = _context_zone(context)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        rfc3339(micros), exact(micros, zone), when(micros, zone)
    )


@pass_context
def _ago(context: Context, micros: int) -> Markup:
    now = context.get("now")
    if not isinstance(now, int):
        return Markup("")
    return Markup('<span class="ago">{}</span>').format(escape(relative(micros, now)))


def html_page(template: str, status_code: int = 200, **values: Any) -> Response[str]:
    values.setdefault("zone", UTC)
    values["zone_label"] = zone_name(values["zone"])
    html = _templates().get_template(template).render(**values)
    return Response(
        html,
        media_type=MediaType.HTML,
        status_code=status_code,
        headers={
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
            "x-frame-options": "DENY",
            "content-security-policy": (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                "frame-ancestors 'none'; form-action 'self'"
            ),
        },
    )
