"""Throughput of the session engine and of `roomlog sessionize`, against the JSON parse floor.

Generates a realistic history (many rooms, meetings of 1 to 12 people, reconnects, short
visits, rooms left open for hours, late and duplicated deliveries), writes it as NDJSON, and
prints events per second for:
  (a) the batch engine on already parsed events, in this process: from columns to its table
      of sessions, and from `PresenceEvent`s to `MeetingSession`s;
  (b) the whole CLI on the NDJSON file, as a separate process, output to /dev/null;
  (c) the floor: a separate process that only parses the same file with the stdlib `json`.

    python benchmarks/sessionize.py [--events 1000000] [--repeat 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from roomlog.domain.batch import session_table, sessionize, who_in
from roomlog.domain.engine import stamp
from roomlog.domain.events import MICROS
from roomlog.ingest.native import parse_event

DATA = Path(__file__).parent / "data"
EPOCH = 1_700_000_000


def meeting(
    rnd: random.Random, room: str, start: float, serial: list[int]
) -> list[dict[str, object]]:
    """One meeting's events: people arrive, some reconnect, some only peek in, all leave."""
    events: list[dict[str, object]] = []
    people = rnd.choice([1, 2, 2, 3, 3, 4, 5, 6, 8, 12])
    length = rnd.expovariate(1 / 1800) + 20
    for _ in range(people):
        serial[0] += 1
        pid = f"p{serial[0]:08x}"
        user = f"user-{rnd.randrange(50_000)}"
        at = start + rnd.uniform(0, min(300, length / 2))
        stay = rnd.uniform(2, 25) if rnd.random() < 0.1 else rnd.uniform(0.5, 1.0) * length
        end = at + stay
        while True:
            events.append(event("participant.joined", room, pid, at, user))
            if rnd.random() < 0.2 and end - at > 60:
                drop = at + rnd.uniform(30, end - at)
                events.append(event("participant.left", room, pid, drop))
                at = drop + rnd.choice([0, 0, 1, 3, 15])
                continue
            events.append(event("participant.left", room, pid, end))
            break
    return events


def event(kind: str, room: str, pid: str, at: float, user: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "type": kind,
        "room": room,
        "participant_id": pid,
        "at": round(at, 3),
    }
    if user is not None:
        body["user_id"] = user
        body["user_name"] = user.replace("-", " ").title()
    return body


def generate(count: int, seed: int, rooms_count: int = 0) -> tuple[list[str], int]:
    """`count` NDJSON lines and the `now` to evaluate them at (by default, a room per 400)."""
    rnd = random.Random(seed)
    rooms = [f"room-{i:05d}" for i in range(rooms_count or max(count // 400, 1))]
    clock = {room: EPOCH + rnd.uniform(0, 3600) for room in rooms}
    serial = [0]
    events: list[dict[str, object]] = []
    while len(events) < count:
        room = rnd.choice(rooms)
        events += meeting(rnd, room, clock[room], serial)
        clock[room] += rnd.expovariate(1 / 5400) + 3600
    delivered = deliveries(rnd, events[:count], 0)
    now = int(max(d[0] for d in delivered)) + 60
    lines = [json.dumps(body, separators=(",", ":")) for _, body in delivered[:count]]
    return lines, now


def deliveries(
    rnd: random.Random, events: list[dict[str, object]], first: int
) -> list[tuple[float, dict[str, object]]]:
    """`events` numbered from `first` and delivered roughly in time order: 5% late by up to
    two minutes, 2% delivered twice; each with its arrival time."""
    delivered: list[tuple[float, dict[str, object]]] = []
    for n, body in enumerate(events, start=first):
        body["id"] = f"evt-{n:09d}"
        at = float(body["at"])  # type: ignore[arg-type]
        delay = rnd.uniform(0, 120) if rnd.random() < 0.05 else rnd.uniform(0, 1)
        delivered.append((at + delay, body))
        if rnd.random() < 0.02:
            delivered.append((at + rnd.uniform(1, 300), body))
    delivered.sort(key=lambda d: d[0])
    return delivered


def best(seconds: list[float]) -> float:
    return min(seconds)


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of `repeat` runs; each result is dropped after the clock stops."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
        del result
    return best(times)


def measure_engine(lines: list[str], now: int, repeat: int) -> tuple[float, float]:
    """Seconds of the batch engine on parsed events: columns to its table of sessions, and
    `PresenceEvent`s to `MeetingSession`s."""
    parsed = [parse_event(line) for line in lines]
    stamps = np.array([stamp(e)[0] for e in parsed], np.int64)
    rooms = [e.room for e in parsed]
    participants = [e.participant_id for e in parsed]
    who = who_in(participants, [e.user_id for e in parsed], [e.user_name for e in parsed])
    # The collector off, as `roomlog sessionize` runs: the engine's objects hold no cycles,
    # and with the parsed input in the heap, collections would cost more than the engine.
    gc.collect()
    gc.disable()
    try:
        table = session_table(stamps, rooms, participants, who, now)
        print(f"sessions: {len(table):,}, participant records: {int(table.bounds[-1]):,}")
        del table
        engine = best_of(repeat, lambda: session_table(stamps, rooms, participants, who, now))
        objects = best_of(repeat, lambda: sessionize(parsed, now))
    finally:
        gc.enable()
    return engine, objects


def timed_process(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return best(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    path = DATA / f"events-{args.events}-{args.seed}.ndjson"
    lines, now = generate(args.events, args.seed)
    if not path.exists():
        path.write_text("\n".join(lines) + "\n")
    size = path.stat().st_size
    count = len(lines)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rooms = len({json.loads(x)["room"] for x in lines})
    print(f"input: {count:,} events, {rooms:,} rooms, {size / 1e6:.0f} MB")

    engine, objects = measure_engine(lines, now * MICROS, args.repeat)

    floor = timed_process(
        [
            sys.executable,
            "-c",
            "import json,sys\nfor line in open(sys.argv[1], 'rb'): json.loads(line)",
            str(path),
        ],
        args.repeat,
    )
    cli = timed_process(
        [sys.executable, "-m", "roomlog", "sessionize", str(path), "--now", str(now)],
        args.repeat,
    )
    print(f"(a) engine, columns to a table: {count / engine:>12,.0f} events/s  ({engine:.2f} s)")
    print(
        f"    PresenceEvents to MeetingSessions: {count / objects:>9,.0f} events/s"
        f"  ({objects:.2f} s)"
    )
    print(f"(b) roomlog sessionize, NDJSON:   {count / cli:>12,.0f} events/s  ({cli:.2f} s)")
    print(f"(c) floor, json.loads per line:   {count / floor:>12,.0f} events/s  ({floor:.2f} s)")
    print(f"CLI time / floor time: {cli / floor:.2f}  (target: 1.5 or less)")


if __name__ == "__main__":
    main()
