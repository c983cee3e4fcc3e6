"""A small generated history for `roomlog serve --demo`: a few rooms over the last days, as
real ones look: one-to-ones of the same two people, stand-ups of one team, all-hands of
everyone, dropped connections and rejoins, someone on a laptop and a phone at once, a
10-minute split, chat, and one meeting still going on."""

from __future__ import annotations

import random

from roomlog.domain.events import JOINED, LEFT, MICROS, ChatMessage, EventType, PresenceEvent

NAMES = {
    "ana": "Ana Silva",
    "ben": "Ben Okafor",
    "chen": "Chen Wei",
    "dara": "Dara Murphy",
    "eli": "Eli Cohen",
    "fatima": "Fatima Haddad",
    "gus": "Gus Lindqvist",
    "hana": "Hana Sato",
    "ivan": "Ivan Petrov",
    "jo": "Jo Mensah",
    "kai": "Kai Nakamura",
    "lena": "Lena Fischer",
}
PEOPLE = tuple(NAMES)
# Each room: who may come, and how many of them come to one session.
ROOMS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "standup": (PEOPLE[:6], 3, 6),
    "design-review": (("ana", "ben", "dara", "hana", "kai"), 2, 5),
    "all-hands": (PEOPLE, 8, 12),
    "office-hours": (PEOPLE, 1, 3),
    "1-1-ana-ben": (("ana", "ben"), 2, 2),
    "1-1-chen-dara": (("chen", "dara"), 2, 2),
}
LINES = (
    "Can everyone see my screen?",
    "You're on mute",
    "Notes are in the doc",
    "+1",
    "Let's take this offline",
    "Sharing the link now",
    "Back in two minutes",
    "Thanks all!",
)


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
                NAMES[person],
            )
        )

    start = now / MICROS - days * 86_400
    for room, (invited, fewest, most) in ROOMS.items():
        clock = start + rnd.uniform(0, 7200)
        while clock < now / MICROS - 7200:
            attendees = rnd.sample(invited, rnd.randint(fewest, most))
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
                if room == "all-hands" and rnd.random() < 0.15:  # a phone beside the laptop
                    on = rnd.uniform(joined, left - 60)
                    off = rnd.uniform(on + 30, left)
                    add(JOINED, room, f"{person}-phone-{int(on)}", on, person)
                    add(LEFT, room, f"{person}-phone-{int(on)}", off, person)
            clock += length + rnd.uniform(3 * 3600, 30 * 3600)
    # A design review that one person stays on after the others leave: after 10 minutes
    # alone, the session splits.
    split = now / MICROS - 86_400 - 3 * 3600
    for person, joined, left in (("ana", 0, 5400), ("ben", 20, 1800), ("dara", 60, 1750)):
        add(JOINED, "design-review", f"{person}-split", split + joined, person)
        add(LEFT, "design-review", f"{person}-split", split + left, person)
    # One meeting going on now, in the stand-up room.
    for n, person in enumerate(("ana", "ben", "chen")):
        add(JOINED, "standup", f"{person}-live", now / MICROS - 900 + n * 40, person)
    return events


def chat(events: list[PresenceEvent], seed: int = 11) -> list[ChatMessage]:
    """A few chat lines in some of the presences of `events`, while each sender is present."""
    rnd = random.Random(seed)
    left = {(e.room, e.participant_id): e.at for e in events if e.type == LEFT}
    messages: list[ChatMessage] = []
    for event in events:
        if event.type != JOINED or rnd.random() > 0.35:
            continue
        until = left.get((event.room, event.participant_id), event.at + 600 * MICROS)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randint(event.at, max(event.at, until - MICROS))
            messages.append(
                ChatMessage(
                    f"{event.id}-chat-{len(messages)}",
                    event.room,
                    event.participant_id,
                    at,
                    rnd.choice(LINES),
                    event.user_name,
                )
            )
    return messages
