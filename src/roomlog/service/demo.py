"""A small generated history for `roomlog serve --demo`: a few rooms over the last days,
with rejoins, short visits, a 10-minute split, and one meeting still going on."""

from __future__ import annotations

import random

from roomlog.domain.events import JOINED, LEFT, MICROS, EventType, PresenceEvent

ROOMS = ("standup", "design-review", "all-hands", "office-hours", "1-1-ana-ben")
PEOPLE = ("ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana")


def history(now: int, days: int = 7, seed: int = 11) -> list[PresenceEvent]:
    """Events of the `days` before `now` (µs); ids are stable for one `now` rounded to a day."""
    rnd = random.Random(seed)
    day = now // (86_400 * MICROS)
    events: list[PresenceEvent] = []

    def add(kind: EventType, room: str, pid: str, at: float, person: str) -> None:
        events.append(
            PresenceEvent(
                f"demo-{day}-{len(events)}",
                kind,
                room,
                pid,
                int(at * MICROS),
                person,
                person.title(),
            )
        )

    start = now / MICROS - days * 86_400
    for room in ROOMS:
        clock = start + rnd.uniform(0, 7200)
        while clock < now / MICROS - 7200:
            attendees = rnd.sample(PEOPLE, rnd.randint(1, 6))
            length = rnd.uniform(300, 3600)
            for n, person in enumerate(attendees):
                joined = clock + (0 if n == 0 else rnd.uniform(0, 120))
                left = clock + length - rnd.uniform(0, 90)
                if rnd.random() < 0.2:  # a dropped connection and a rejoin
                    drop = rnd.uniform(joined + 60, left - 30)
                    add(JOINED, room, f"{person}-{int(joined)}", joined, person)
                    add(LEFT, room, f"{person}-{int(joined)}", drop, person)
                    joined = drop + rnd.uniform(2, 20)
                add(JOINED, room, f"{person}-{int(joined)}", joined, person)
                add(LEFT, room, f"{person}-{int(joined)}", max(left, joined + 15), person)
            clock += length + rnd.uniform(3 * 3600, 30 * 3600)
    # One meeting going on now, in the stand-up room.
    for n, person in enumerate(("ana", "ben", "chen")):
        add(JOINED, "standup", f"{person}-live", now / MICROS - 900 + n * 40, person)
    return events
