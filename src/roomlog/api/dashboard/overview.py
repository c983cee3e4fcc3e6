"""What the overview shows, computed from sessions: activity per day of the viewer's time
zone and the busiest rooms."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, timedelta, tzinfo
from typing import NamedTuple

from roomlog.api.dashboard.render import day_start, local, today
from roomlog.domain.events import MICROS
from roomlog.store.queries import QUARTER, Activity

MINUTE = 60 * MICROS


class Day(NamedTuple):
    day: date
    sessions: int
    minutes: int  # participant-minutes, floored


class BusyRoom(NamedTuple):
    room: str
    sessions: int
    minutes: int


def first_day(now: int, days: int, zone: tzinfo = UTC) -> int:
    """The start (µs) of the first day, in `zone`, of the `days` days that end with today."""
    return day_start(today(now, zone) - timedelta(days=days - 1), zone)


def activity(
    groups: Iterable[Activity], now: int, days: int = 30, busiest: int = 5, zone: tzinfo = UTC
) -> tuple[list[Day], list[BusyRoom]]:
    """Sessions and participant-minutes per day of `zone` (by the day a session started) over
    the last `days` days, and the `busiest` rooms of that time by participant-minutes, from
    the per-quarter-hour, per-room sums of `queries.activity` since `first_day`."""
    since = first_day(now, days, zone)
    start = local(since, zone).date()
    counts = [0] * days
    attended = [0] * days
    rooms: dict[str, list[int]] = {}
    for group in groups:
        n = (local(since + group.quarter * QUARTER, zone).date() - start).days
        if not 0 <= n < days:
            continue
        counts[n] += group.sessions
        attended[n] += group.attended
        room = rooms.setdefault(group.room, [0, 0])
        room[0] += group.sessions
        room[1] += group.attended
    per_day = [
        Day(start + timedelta(days=n), counts[n], attended[n] // MINUTE) for n in range(days)
    ]
    ranked = sorted(rooms.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))[:busiest]
    return per_day, [BusyRoom(name, n, time // MINUTE) for name, (n, time) in ranked]


class Bar(NamedTuple):
    x: float
    y: float
    width: float
    height: float
    label: str


def bars(
    values: list[tuple[date, int]], unit: str, width: int = 600, height: int = 120
) -> list[Bar]:
    """SVG bars for one series: one per day, scaled to the largest value."""
    top = max((v for _, v in values), default=0) or 1
    step = width / max(len(values), 1)
    return [
        Bar(
            x=round(n * step + 1, 2),
            y=round(height - value / top * height, 2),
            width=round(step - 2, 2),
            height=round(value / top * height, 2),
            label=f"{day:%a %d %b}: {value:,} {unit}",
        )
        for n, (day, value) in enumerate(values)
    ]
