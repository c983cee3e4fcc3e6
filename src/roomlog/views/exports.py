"""The CSV exports: sessions, attendance and chat, one row per item, with a header row.

Times are RFC 3339 in UTC with milliseconds, durations whole seconds (floored), as the APIs
give them. A cell that a spreadsheet would run as a formula (one starting with `=`, `+`, `-`,
`@`, a tab or a carriage return) is written with a leading `'`, so an export opened in a
spreadsheet shows what was said instead of running it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from roomlog.domain.attendance import attendees, share
from roomlog.domain.events import MICROS, ChatMessage, rfc3339
from roomlog.domain.people import PersonKey, RoomTotals, Totals, people, percent, totals
from roomlog.domain.sessions import MeetingSession

SESSION_COLUMNS: Final = (
    "id",
    "room",
    "start_time",
    "end_time",
    "duration",
    "ongoing",
    "max_participants",
    "participants",
)
ATTENDANCE_COLUMNS: Final = (
    "session_id",
    "room",
    "participant_id",
    "user_id",
    "user_name",
    "first_join",
    "last_leave",
    "time_present",
    "share_percent",
    "presences",
)
PERSON_ATTENDANCE_COLUMNS: Final = (
    "session_id",
    "room",
    "person",
    "user_id",
    "user_name",
    "participant_ids",
    "first_join",
    "last_leave",
    "attended",
    "share_percent",
    "intervals",
)
PERSON_SESSION_COLUMNS: Final = (
    "session_id",
    "room",
    "start_time",
    "end_time",
    "attended",
    "share_percent",
    "participant_ids",
)
ROOM_COLUMNS: Final = ("room", "sessions", "people", "attended", "latest_start")
CHAT_COLUMNS: Final = ("timestamp", "participant", "name", "text")
PEOPLE_COLUMNS: Final = (
    "person",
    "user_id",
    "user_name",
    "sessions",
    "attended",
    "first_seen",
    "last_seen",
)

Cell = str | int | None
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def _safe(value: str | None) -> str | None:
    if value and value.startswith(_FORMULA):
        return "'" + value
    return value


def _time(micros: int | None) -> str:
    return "" if micros is None else rfc3339(micros)


def session_row(session: MeetingSession, now: int) -> list[Cell]:
    return [
        session.id,
        _safe(session.room),
        rfc3339(session.start),
        _time(session.end),
        session.duration(now) // MICROS,
        "true" if session.end is None else "false",
        session.max_participants,
        len({r.participant_id for r in session.participants}),
    ]


def attendance_rows(session: MeetingSession, now: int) -> list[list[Cell]]:
    """One row per participant of `session`, earliest first join first."""
    return [
        [
            session.id,
            _safe(session.room),
            _safe(a.participant_id),
            _safe(a.user_id),
            _safe(a.user_name),
            rfc3339(a.first_join),
            _time(a.last_leave),
            a.present // MICROS,
            f"{100 * share(a, session, now):.1f}",
            a.presences,
        ]
        for a in attendees(session, now)
    ]


def chat_rows(messages: Iterable[ChatMessage], names: dict[str, str | None]) -> list[list[Cell]]:
    """One row per message; `names` gives a participant's name where the message has none."""
    return [
        [
            rfc3339(m.at),
            _safe(m.participant_id),
            _safe(m.user_name or names.get(m.participant_id)),
            _safe(m.text),
        ]
        for m in messages
    ]


def render(rows: Iterable[Sequence[Cell]]) -> str:
    """`rows` as CSV text (RFC 4180: CRLF line ends, quotes where needed)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def sessions_csv(pages: Iterable[Sequence[MeetingSession]], now: int) -> Iterator[str]:
    """Sessions, a page at a time, as CSV chunks (header first)."""
    yield render([SESSION_COLUMNS])
    for page in pages:
        yield render(session_row(session, now) for session in page)


def attendance_csv(pages: Iterable[Sequence[MeetingSession]], now: int) -> Iterator[str]:
    """The attendance of sessions, a page at a time, as CSV chunks (header first)."""
    yield render([ATTENDANCE_COLUMNS])
    for page in pages:
        yield render(row for session in page for row in attendance_rows(session, now))


def people_csv(
    pages: Iterable[Sequence[MeetingSession]],
    now: int,
    person: str | None = None,
    by: PersonKey = "user_id",
) -> Iterator[str]:
    """Attendance per person (`by` says who is one) over the sessions of `pages` (or of
    `person` alone), by person key, as CSV chunks (header first); `attended` is in whole
    seconds."""
    yield render([PEOPLE_COLUMNS])
    yield render(people_rows(totals(pages, now, by, person)))


def people_rows(found: Iterable[Totals]) -> list[list[Cell]]:
    """One row per person of `found`; `attended` in whole seconds."""
    return [
        [
            _safe(t.person),
            _safe(t.user_id),
            _safe(t.user_name),
            t.sessions,
            t.attended // MICROS,
            rfc3339(t.first_seen),
            rfc3339(t.last_seen),
        ]
        for t in found
    ]


def person_session_rows(found: Totals, now: int) -> list[list[Cell]]:
    """One row per session of `found` (counted with `detail`), oldest first."""
    return [
        [
            session.id,
            _safe(session.room),
            rfc3339(session.start),
            _time(session.end),
            one.attended // MICROS,
            f"{percent(one.attended, session, now):.1f}",
            _safe(" ".join(one.participant_ids)),
        ]
        for session, one in found.each
    ]


def room_rows(found: Iterable[RoomTotals]) -> list[list[Cell]]:
    return [
        [_safe(r.room), r.sessions, len(r.people), r.attended // MICROS, rfc3339(r.latest)]
        for r in found
    ]


def session_people_rows(
    session: MeetingSession, now: int, by: PersonKey = "user_id"
) -> list[list[Cell]]:
    """One row per person in `session` (their presences united), earliest first join first."""
    return [
        [
            session.id,
            _safe(session.room),
            _safe(p.person),
            _safe(p.user_id),
            _safe(p.user_name),
            _safe(" ".join(p.participant_ids)),
            rfc3339(p.first_join),
            _time(p.last_leave),
            p.attended // MICROS,
            f"{percent(p.attended, session, now):.1f}",
            len(p.intervals),
        ]
        for p in people(session, now, by)
    ]
