"""When a session began and ended, and why, in the words of SESSION-RULES step 3.

A session's `start_time` is its first join, but it only *begins* later: when a second
participant joins, or after `solo_start` alone. It ends when the room empties, or after
`solo_reset` alone, where the next session of the room starts at that same instant.
"""

from __future__ import annotations

from typing import NamedTuple

from roomlog.domain.events import MICROS
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import MeetingSession


class Moment(NamedTuple):
    at: int  # µs
    reason: str


def span(micros: int) -> str:
    """A rule's length as people say it: `30 s`, `10 min`, `1 h 30 min`."""
    hours, rest = divmod(micros // MICROS, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes:
        parts.append(f"{minutes} min")
    if seconds or not parts:
        parts.append(f"{seconds} s")
    return " ".join(parts)


def _second_join(session: MeetingSession, until: int) -> int | None:
    """The first instant before `until` at which two or more distinct participants are
    present; at one instant, leaves take effect before joins (a reconnect is no second)."""
    changes: list[tuple[int, int, str]] = []
    for record in session.participants:
        changes.append((record.join, 1, record.participant_id))
        if record.leave is not None:
            changes.append((record.leave, 0, record.participant_id))
    changes.sort()
    present: dict[str, int] = {}
    for at, joined, participant in changes:
        if at >= until:
            return None
        if joined:
            present[participant] = present.get(participant, 0) + 1
            if len(present) >= 2:
                return at
        elif present.get(participant, 0) > 1:
            present[participant] -= 1
        else:
            present.pop(participant, None)
    return None


def began(session: MeetingSession, rules: Rules, previous_end: int | None) -> Moment:
    """When and why `session` began; `previous_end` is the end of the room's session before."""
    if previous_end == session.start:
        return Moment(
            session.start,
            f"split from the previous session after one participant was alone for "
            f"{span(rules.solo_reset)}",
        )
    second = _second_join(session, session.start + rules.solo_start)
    if second is not None:
        return Moment(second, "a second participant joined")
    return Moment(
        session.start + rules.solo_start,
        f"one participant was present for {span(rules.solo_start)}",
    )


def ended(session: MeetingSession, rules: Rules, next_start: int | None) -> Moment | None:
    """When and why `session` ended (None while it is ongoing); `next_start` is the start of
    the room's session after it."""
    if session.end is None:
        return None
    if next_start == session.end:
        return Moment(session.end, f"one participant was alone for {span(rules.solo_reset)}")
    return Moment(session.end, "the last participant left")
