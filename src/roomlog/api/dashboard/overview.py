"""What the overview shows, computed from sessions: activity per day and the busiest rooms."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from roomlog.domain.events import MICROS
from roomlog.store.queries import Activity

DAY = 86_400 * MICROS
MINUTE = 60 * MICROS


class Day(NamedTuple):
    day: date
    sessions: int
    minutes: int  # participant-minutes, floored


class BusyRoom(NamedTuple):
    room: str
    sessions: int
    minutes: int


def first_day(now: int, days: int) -> int:
    """The start (µs) of the first UTC day of the `days` days that end with today."""
    return (now // DAY - days + 1) * DAY


def activity(
    groups: Iterable[Activity], now: int, days: int = 30, busiest: int = 5
) -> tuple[list[Day], list[BusyRoom]]:
    """Sessions and participant-minutes per UTC day (by the day a session started) over the
    last `days` days, and the `busiest` rooms of that time by participant-minutes, from the
    per-day, per-room sums of `queries.activity`."""
    counts = [0] * days
    attended = [0] * days
    rooms: dict[str, list[int]] = {}
    for group in groups:
        if not 0 <= group.day < days:
            continue
        counts[group.day] += group.sessions
        attended[group.day] += group.attended
        room = rooms.setdefault(group.room, [0, 0])
        room[0] += group.sessions
        room[1] += group.attended
    start = datetime.fromtimestamp(first_day(now, days) // MICROS, tz=UTC).date()
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
