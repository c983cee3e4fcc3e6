"""What one event costs a busy room: the incremental engine fed a room's events one by one,
each followed by a read (as the write path does), with its restart points and without.

A room keeps every event since its checkpoint, and the checkpoint stays a late window
(10 minutes) behind the room's newest event, so a busy room holds hundreds or thousands of
events. Without restart points, each read replays all of them; with them (the default), a
read replays from the latest settled instant a previous read found. Prints CPU µs per
event for rooms of 10 and 50 people, each toggling (joining or leaving) at random.
"""

from __future__ import annotations

import argparse
import platform
import random
import time

from roomlog.domain.engine import Room
from roomlog.domain.events import JOINED, LEFT, MICROS, EventType, PresenceEvent

T0 = 1_700_000_000 * MICROS


def events(people: int, count: int, every: float, seed: int = 1) -> list[PresenceEvent]:
    """`count` events `every` seconds apart, each a random person joining or leaving."""
    rnd = random.Random(seed)
    inside = dict.fromkeys((f"p{i}" for i in range(people)), False)
    found = []
    for n in range(count):
        person = rnd.choice(list(inside))
        kind: EventType = LEFT if inside[person] else JOINED
        inside[person] = not inside[person]
        found.append(PresenceEvent(f"e{n}", kind, "r", person, T0 + int(n * every * MICROS)))
    return found


def per_event(feed: list[PresenceEvent], restart: bool) -> float:
    """CPU µs per event for adding each event and reading the room at its instant."""
    room = Room("r")
    if not restart:
        room.restart_after = 1 << 62
    started = time.process_time()
    for event in feed:
        room.add(event)
        room.sessions(event.at)
    return (time.process_time() - started) / len(feed) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1200, help="events per room")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    for people, every in ((10, 2.0), (50, 0.5)):
        feed = events(people, args.events, every)
        span = args.events * every
        without = per_event(feed, restart=False)
        with_ = per_event(feed, restart=True)
        print(
            f"{people} people, an event every {every:g} s ({args.events} events over {span:.0f} s,"
            f" none settled): {without:,.0f} µs/event without restart points,"
            f" {with_:,.0f} with them (x{without / with_:.1f})"
        )


if __name__ == "__main__":
    main()
