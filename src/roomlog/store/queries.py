"""The read side: sessions and presence for one project, paged by keyset on indexed columns.

Daily's order is newest first: `start_at` descending, then room descending, which the index
`(project_id, start_at, room)` serves read backwards; a cursor is a session id, resolved to its
`(start_at, room)`, and a page is the rows strictly past it, so a page costs the same however
deep in the history it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, exists, func, literal, select, tuple_, union_all

from roomlog.domain.events import MICROS, ChatMessage
from roomlog.domain.sessions import MeetingSession
from roomlog.store.db import Database
from roomlog.store.rooms import decode_participants, decode_presence
from roomlog.store.schema import chat_messages, events, rooms, sessions

QUARTER: Final = 900 * MICROS

# How many sessions an export reads at a time.
EXPORT_PAGE: Final = 500


class UnknownCursor(LookupError):
    """A cursor that names no session of the project."""


@dataclass(frozen=True, slots=True)
class MeetingFilter:
    room: str | None = None
    start_from: int | None = None  # µs, inclusive
    start_before: int | None = None  # µs, exclusive
    ongoing: bool | None = None
    room_contains: str | None = None  # part of the room's name, in any case

    @property
    def plain(self) -> bool:
        """No filter other than the room: the count comes from the rooms' counters."""
        return (
            self.start_from is None
            and self.start_before is None
            and self.ongoing is None
            and self.room_contains is None
        )


# A session's columns, in the order `to_session` reads them.
SESSION_COLUMNS: Final = (
    sessions.c.id,
    sessions.c.room,
    sessions.c.start_at,
    sessions.c.end_at,
    sessions.c.max_participants,
    sessions.c.participants,
)


def to_session(row: Any) -> MeetingSession:
    return MeetingSession(row[0], row[1], row[2], row[3], row[4], decode_participants(row[5]))


def _where(project_id: int, where: MeetingFilter) -> list[Any]:
    clauses: list[Any] = [sessions.c.project_id == project_id]
    if where.room is not None:
        clauses.append(sessions.c.room == where.room)
    if where.room_contains:
        clauses.append(sessions.c.room.icontains(where.room_contains, autoescape=True))
    if where.start_from is not None:
        clauses.append(sessions.c.start_at >= where.start_from)
    if where.start_before is not None:
        clauses.append(sessions.c.start_at < where.start_before)
    if where.ongoing is True:
        clauses.append(sessions.c.end_at.is_(None))
    elif where.ongoing is False:
        clauses.append(sessions.c.end_at.is_not(None))
    return clauses


def _position(connection: Connection, project_id: int, session_id: str) -> tuple[int, str]:
    row = connection.execute(
        select(sessions.c.start_at, sessions.c.room).where(
            sessions.c.project_id == project_id, sessions.c.id == session_id
        )
    ).first()
    if row is None:
        raise UnknownCursor(session_id)
    return row[0], row[1]


def count_meetings(connection: Connection, project_id: int, where: MeetingFilter) -> int:
    if where.plain:
        query = select(func.coalesce(func.sum(rooms.c.session_count), 0)).where(
            rooms.c.project_id == project_id
        )
        if where.room is not None:
            query = query.where(rooms.c.name == where.room)
    else:
        query = select(func.count()).select_from(sessions).where(*_where(project_id, where))
    return int(connection.execute(query).scalar_one())


def list_meetings(
    connection: Connection,
    project_id: int,
    where: MeetingFilter,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
    offset: int = 0,
    below: tuple[int, str] | None = None,
) -> list[MeetingSession]:
    """A page of sessions, newest first; `below` is a `(start, room)` to continue past."""
    clauses = _where(project_id, where)
    newer = False
    if below is not None:
        clauses.append(tuple_(sessions.c.start_at, sessions.c.room) < tuple_(*map(literal, below)))
    if starting_after is not None:
        position = tuple_(*map(literal, _position(connection, project_id, starting_after)))
        clauses.append(tuple_(sessions.c.start_at, sessions.c.room) < position)
    if ending_before is not None:
        position = tuple_(*map(literal, _position(connection, project_id, ending_before)))
        clauses.append(tuple_(sessions.c.start_at, sessions.c.room) > position)
        newer = starting_after is None
    query = select(*SESSION_COLUMNS).where(*clauses)
    if newer:
        # The page just before the cursor: the oldest rows newer than it, shown newest first.
        query = query.order_by(sessions.c.start_at.asc(), sessions.c.room.asc())
    else:
        query = query.order_by(sessions.c.start_at.desc(), sessions.c.room.desc())
    query = query.limit(limit).offset(offset or None)
    found = [to_session(row) for row in connection.execute(query)]
    return found[::-1] if newer else found


def get_meeting(connection: Connection, project_id: int, session_id: str) -> MeetingSession | None:
    row = connection.execute(
        select(*SESSION_COLUMNS).where(
            sessions.c.project_id == project_id, sessions.c.id == session_id
        )
    ).first()
    return None if row is None else to_session(row)


@dataclass(frozen=True, slots=True)
class Present:
    room: str
    session_id: str | None
    participant_id: str
    join: int
    user_id: str | None
    user_name: str | None


def presence(connection: Connection, project_id: int, room: str | None = None) -> list[Present]:
    """Everyone in the project's rooms now (or in `room`), by room, earliest join first."""
    query = (
        select(rooms.c.name, rooms.c.presence)
        .where(rooms.c.project_id == project_id, rooms.c.occupancy > 0)
        .order_by(rooms.c.name)
    )
    if room is not None:
        query = query.where(rooms.c.name == room)
    found: list[Present] = []
    for name, blob in connection.execute(query):
        session_id, people = decode_presence(blob)
        found += [Present(name, session_id, p[0], p[1], p[2], p[3]) for p in people]
    return found


def room_exists(connection: Connection, project_id: int, room: str) -> bool:
    query = select(rooms.c.name).where(rooms.c.project_id == project_id, rooms.c.name == room)
    return connection.execute(query).first() is not None


def _chat_bounds(project_id: int, session: MeetingSession) -> list[Any]:
    """A session's chat: the messages of its room in `[start, end)`, half-open like its
    intervals, so a message at the instant of a 10-minute split goes to the new session."""
    clauses: list[Any] = [
        chat_messages.c.project_id == project_id,
        chat_messages.c.room == session.room,
        chat_messages.c.at >= session.start,
    ]
    if session.end is not None:
        clauses.append(chat_messages.c.at < session.end)
    return clauses


def chat(connection: Connection, project_id: int, session: MeetingSession) -> list[ChatMessage]:
    """The chat of `session`, oldest first."""
    columns = [chat_messages.c[name] for name in ChatMessage._fields]
    query = (
        select(*columns)
        .where(*_chat_bounds(project_id, session))
        .order_by(chat_messages.c.at, chat_messages.c.id)
    )
    return [ChatMessage(*row) for row in connection.execute(query)]


def with_chat(connection: Connection, project_id: int, found: Sequence[MeetingSession]) -> set[str]:
    """The ids of those of `found` that have any chat: one indexed probe per session, in one
    statement."""
    if not found:
        return set()
    probes = [
        select(literal(session.id)).where(exists().where(*_chat_bounds(project_id, session)))
        for session in found
    ]
    return {row[0] for row in connection.execute(union_all(*probes))}


class Neighbour(NamedTuple):
    id: str
    at: int  # the end of the session before, or the start of the session after


def neighbours(
    connection: Connection, project_id: int, session: MeetingSession
) -> tuple[Neighbour | None, Neighbour | None]:
    """The room's session before `session` with its end, and the one after with its start."""
    same_room = (sessions.c.project_id == project_id, sessions.c.room == session.room)
    before = connection.execute(
        select(sessions.c.id, sessions.c.end_at)
        .where(*same_room, sessions.c.start_at < session.start)
        .order_by(sessions.c.start_at.desc())
        .limit(1)
    ).first()
    after = connection.execute(
        select(sessions.c.id, sessions.c.start_at)
        .where(*same_room, sessions.c.start_at > session.start)
        .order_by(sessions.c.start_at.asc())
        .limit(1)
    ).first()
    return (
        None if before is None or before[1] is None else Neighbour(before[0], before[1]),
        None if after is None else Neighbour(after[0], after[1]),
    )


class Activity(NamedTuple):
    """The sessions of one room that started in one quarter of an hour, and their participant
    time (µs). Quarters, not days, so that a viewer's days can be counted in any time zone."""

    quarter: int  # quarters of an hour since the instant asked for
    room: str
    sessions: int
    attended: int


def activity(connection: Connection, project_id: int, since: int, now: int) -> list[Activity]:
    """Per quarter of an hour since `since` (µs) and room: sessions started, participant time.

    Ended sessions are summed by the database from their `attended` column; only the ongoing
    ones, whose open presences grow with time, are read and summed up to `now`.
    """
    day = ((sessions.c.start_at - since) // QUARTER).label("quarter")
    ended = (
        select(day, sessions.c.room, func.count(), func.sum(sessions.c.attended))
        .where(
            sessions.c.project_id == project_id,
            sessions.c.start_at >= since,
            sessions.c.end_at.is_not(None),
        )
        .group_by(day, sessions.c.room)
    )
    found = [Activity(int(d), r, int(n), int(t)) for d, r, n, t in connection.execute(ended)]
    ongoing = select(sessions.c.start_at, sessions.c.room, sessions.c.participants).where(
        sessions.c.project_id == project_id,
        sessions.c.start_at >= since,
        sessions.c.end_at.is_(None),
    )
    for start, room, blob in connection.execute(ongoing):
        time = sum(r.duration(now) for r in decode_participants(blob))
        found.append(Activity((start - since) // QUARTER, room, 1, time))
    return found


def room_names(connection: Connection, project_id: int, limit: int = 500) -> list[str]:
    query = (
        select(rooms.c.name)
        .where(rooms.c.project_id == project_id, rooms.c.session_count > 0)
        .order_by(rooms.c.name)
        .limit(limit)
    )
    return [row[0] for row in connection.execute(query)]


def meeting_pages(
    database: Database, project_id: int, where: MeetingFilter, size: int = EXPORT_PAGE
) -> Iterator[list[MeetingSession]]:
    """The sessions matching `where`, newest first, `size` at a time, each page read in a
    transaction of its own: a download of the whole history holds one page in memory."""
    below: tuple[int, str] | None = None
    while True:
        with database.reader.connect() as connection:
            found = list_meetings(connection, project_id, where, size, below=below)
        if found:
            yield found
        if len(found) < size:
            return
        below = (found[-1].start, found[-1].room)


class KnownRoom(NamedTuple):
    """A room as roomlog knows it: its name and the instants (µs) of its first and latest
    events."""

    name: str
    first_at: int
    latest_at: int


def _known_rooms(project_id: int) -> Any:
    # Each room's first and latest instants are read from the end of its events' index.
    first = (
        select(func.min(events.c.at))
        .where(events.c.project_id == project_id, events.c.room == rooms.c.name)
        .scalar_subquery()
    )
    latest = (
        select(func.max(events.c.at))
        .where(events.c.project_id == project_id, events.c.room == rooms.c.name)
        .scalar_subquery()
    )
    return select(rooms.c.name, first, latest).where(rooms.c.project_id == project_id)


def list_rooms(
    connection: Connection, project_id: int, limit: int, offset: int = 0
) -> list[KnownRoom]:
    """A page of the project's rooms that hold events, by name."""
    query = _known_rooms(project_id).order_by(rooms.c.name).limit(limit).offset(offset or None)
    return [KnownRoom(*row) for row in connection.execute(query) if row[1] is not None]


def count_rooms(connection: Connection, project_id: int) -> int:
    query = select(func.count()).select_from(rooms).where(rooms.c.project_id == project_id)
    return int(connection.execute(query).scalar_one())


def find_room(connection: Connection, project_id: int, name: str) -> KnownRoom | None:
    row = connection.execute(_known_rooms(project_id).where(rooms.c.name == name)).first()
    return None if row is None or row[1] is None else KnownRoom(*row)
