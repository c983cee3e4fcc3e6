"""The dashboard's list filters: date ranges in the viewer's time zone, quick ranges, and
the links that keep a list's filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Final
from urllib.parse import urlencode

from roomlog.api.dashboard.render import day_start, today

QUICK_RANGES: Final = (("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30))


@dataclass(slots=True)
class Range:
    """Sessions that started from the first to the last day (inclusive) of the viewer."""

    start: str = ""  # as given, YYYY-MM-DD
    end: str = ""
    start_from: int | None = None  # µs, inclusive
    start_before: int | None = None  # µs, exclusive
    problems: list[str] = field(default_factory=list)


def _day(value: str | None, name: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
        return None


def date_range(start: str | None, end: str | None, zone: tzinfo) -> Range:
    """The range from the `start` and `end` days (either may be blank) of `zone`."""
    found = Range(start or "", end or "")
    first = _day(start, "From", found.problems)
    last = _day(end, "To", found.problems)
    if first is not None and last is not None and last < first:
        found.problems.append("To: the last day comes before the first; swap them")
    if first is not None:
        found.start_from = day_start(first, zone)
    if last is not None:
        found.start_before = day_start(last + timedelta(days=1), zone)
    return found


def link(path: str, values: dict[str, str]) -> str:
    kept = {k: v for k, v in values.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def quick_ranges(
    path: str, kept: dict[str, str], chosen: Range, now: int, zone: tzinfo
) -> list[dict[str, str | bool]]:
    """Links to `path` with `kept` filters over the last days of the viewer, and all time."""
    last = today(now, zone).isoformat()
    found: list[dict[str, str | bool]] = []
    for label, days in QUICK_RANGES:
        first = (today(now, zone) - timedelta(days=days - 1)).isoformat()
        found.append(
            {
                "label": label,
                "href": link(path, {**kept, "start": first, "end": last}),
                "current": chosen.start == first and chosen.end == last,
            }
        )
    # `start=` present but blank: all time, where a page's default is a shorter range.
    everything = link(path, {**kept, "start": "", "end": ""})
    found.append(
        {
            "label": "All time",
            "href": everything + ("&" if "?" in everything else "?") + "start=",
            "current": not chosen.start and not chosen.end,
        }
    )
    return found
