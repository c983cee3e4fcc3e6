"""Attendance per person: a session's presences grouped by who they are, their intervals
united, so that a reconnect or a second device counts once and a gap counts nothing.

A person is the `user_id` the joins carry; where a join carries none, the `participant_id`
alone (one connection is all roomlog knows of them). `by="user_name"` makes the user name the
key before the participant id, for providers that send no user id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from roomlog.domain.sessions import Attendance, MeetingSession

PersonKey = Literal["user_id", "user_name"]
PERSON_KEYS: tuple[PersonKey, ...] = ("user_id", "user_name")


class Interval(NamedTuple):
    """Time present, `[join, leave)` in µs; `leave` None while still present."""

    join: int
    leave: int | None


class Person(NamedTuple):
    """One person's attendance in one session (µs)."""

    person: str
    user_id: str | None
    user_name: str | None
    participant_ids: tuple[str, ...]  # in the order of their first joins
    first_join: int
    last_leave: int | None  # None while still present
    attended: int  # the length of the union of their presences, up to `now`
    intervals: tuple[Interval, ...]  # the union, earliest first


def person_of(record: Attendance, by: PersonKey = "user_id") -> str:
    """Who `record` is about: its user id (or user name, `by`), else its participant id."""
    if by == "user_name":
        return record.user_name or record.user_id or record.participant_id
    return record.user_id or record.participant_id


def united(presences: Iterable[Interval]) -> list[Interval]:
    """The union of `presences`, merged where they touch or overlap, earliest first."""
    merged: list[Interval] = []
    for join, leave in sorted(presences, key=lambda i: i.join):
        last = merged[-1] if merged else None
        if last is not None and (last.leave is None or join <= last.leave):
            if last.leave is not None and (leave is None or leave > last.leave):
                merged[-1] = Interval(last.join, leave)
        else:
            merged.append(Interval(join, leave))
    return merged


def people(session: MeetingSession, now: int, by: PersonKey = "user_id") -> list[Person]:
    """One `Person` per person present in `session`, earliest first join first (then by key);
    open presences run to `now`."""
    grouped: dict[str, list[Attendance]] = {}
    for record in sorted(session.participants, key=lambda r: (r.join, r.participant_id)):
        grouped.setdefault(person_of(record, by), []).append(record)
    found: list[Person] = []
    for key, records in grouped.items():
        intervals = united(Interval(r.join, r.leave) for r in records)
        leaves = [r.leave for r in records]
        found.append(
            Person(
                person=key,
                user_id=next((r.user_id for r in records if r.user_id is not None), None),
                user_name=next((r.user_name for r in records if r.user_name is not None), None),
                participant_ids=tuple(dict.fromkeys(r.participant_id for r in records)),
                first_join=records[0].join,
                last_leave=None if None in leaves else max(x for x in leaves if x is not None),
                attended=sum((now if i.leave is None else i.leave) - i.join for i in intervals),
                intervals=tuple(intervals),
            )
        )
    found.sort(key=lambda p: (p.first_join, p.person))
    return found


def percent(attended: int, session: MeetingSession, now: int) -> float:
    """`attended` (µs) as a percentage of `session`'s duration at `now`."""
    return 100 * attended / max(session.duration(now), 1)


@dataclass(slots=True)
class Totals:
    """One person's attendance over many sessions (µs), summed as sessions are added."""

    person: str
    user_id: str | None
    user_name: str | None
    sessions: int
    attended: int
    first_seen: int  # their earliest join
    last_seen: int  # their latest leave, or `now` while still present
    each: list[tuple[MeetingSession, Person]]  # with `detail`, oldest session first


def totals(
    pages: Iterable[Iterable[MeetingSession]],
    now: int,
    by: PersonKey = "user_id",
    only: str | None = None,
    detail: bool = False,
) -> list[Totals]:
    """Attendance per person (or of person `only`) over the sessions of `pages`, by person
    key; with `detail`, each person's sessions too, oldest first."""
    found: dict[str, Totals] = {}
    for page in pages:
        for session in page:
            for person in people(session, now, by):
                if only is not None and person.person != only:
                    continue
                last = now if person.last_leave is None else person.last_leave
                seen = found.get(person.person)
                if seen is None:
                    seen = found[person.person] = Totals(
                        person.person, None, None, 0, 0, person.first_join, last, []
                    )
                seen.user_id = seen.user_id or person.user_id
                seen.user_name = seen.user_name or person.user_name
                seen.sessions += 1
                seen.attended += person.attended
                seen.first_seen = min(seen.first_seen, person.first_join)
                seen.last_seen = max(seen.last_seen, last)
                if detail:
                    seen.each.append((session, person))
    everyone = sorted(found.values(), key=lambda t: t.person)
    for t in everyone:
        t.each.sort(key=lambda e: (e[0].start, e[0].room))
    return everyone


@dataclass(slots=True)
class RoomTotals:
    """One room's sessions over a span: how many, who came, and their attendance (µs)."""

    room: str
    sessions: int
    people: set[str]
    attended: int  # each person's union per session, summed
    latest: int  # the start of its latest session


def room_totals(
    pages: Iterable[Iterable[MeetingSession]], now: int, by: PersonKey = "user_id"
) -> list[RoomTotals]:
    """Per room, the sessions of `pages`: their count, the people who came and the time they
    attended; the most recently active room first."""
    found: dict[str, RoomTotals] = {}
    for page in pages:
        for session in page:
            room = found.get(session.room)
            if room is None:
                room = found[session.room] = RoomTotals(session.room, 0, set(), 0, session.start)
            room.sessions += 1
            room.latest = max(room.latest, session.start)
            for person in people(session, now, by):
                room.people.add(person.person)
                room.attended += person.attended
    return sorted(found.values(), key=lambda r: (-r.latest, r.room))
