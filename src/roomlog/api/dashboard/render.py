"""How the dashboard renders: its Jinja2 templates, their filters, and a page's headers."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import MediaType, Response

from roomlog.domain.events import MICROS, rfc3339
from roomlog.domain.timeline import span


@cache
def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("roomlog.api.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = when
    environment.filters["span"] = lambda micros: span(max(micros, 0))
    environment.filters["iso"] = rfc3339
    return environment


def when(micros: int) -> str:
    """An instant as the dashboard shows it: UTC, to the millisecond."""
    moment = datetime.fromtimestamp(micros // MICROS, tz=UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{micros % MICROS // 1000:03d}"


def clock_time(micros: int) -> str:
    return f"{datetime.fromtimestamp(micros // MICROS, tz=UTC):%H:%M:%S}"


def html_page(template: str, status_code: int = 200, **values: Any) -> Response[str]:
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
