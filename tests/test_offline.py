"""The offline pipeline: any input order and size gives what the batch engine gives."""

from __future__ import annotations

import io
import json
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomlog.domain.batch import SessionTable, sessionize
from roomlog.domain.engine import Room
from roomlog.domain.events import (
    JOINED,
    LEFT,
    MICROS,
    ROOM_ENDED,
    ROOM_SNAPSHOT,
    PresenceEvent,
    RoomEvent,
    micros_from_unix,
)
from roomlog.domain.rules import Rules
from roomlog.domain.sessions import MeetingSession
from roomlog.offline import Outcome, sessionize_lines
from roomlog.offline.output import InMemory
from roomlog.offline.reading import halves
from tests.helpers import histories

RULES = Rules.seconds(min_presence=2, solo_start=3, solo_reset=5)


def line(event: PresenceEvent) -> bytes:
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "room": event.room,
            "participant_id": event.participant_id,
            "at": event.at / MICROS,
            "user_id": event.user_id,
        }
    ).encode()


def written(outcome: Outcome) -> bytes:
    out = io.BytesIO()
    outcome.write(out)
    return out.getvalue()


def body(sessions: list[MeetingSession], now: int) -> bytes:
    """Daily's body for `sessions`, as the in-memory path writes it."""
    out = io.BytesIO()
    InMemory(SessionTable.of(sessions, now)).write(out)
    return out.getvalue()


mixed_histories = histories(
    rooms=("r", "s", "t"), latest=2_000 * MICROS, most=60, user_ids=(None, "u1", "u2")
)


@given(mixed_histories, st.integers(min_value=1, max_value=12), st.randoms())
def test_partitions_give_the_batch_result(
    events: list[PresenceEvent], chunk: int, rnd: random.Random
) -> None:
    now = 2_100 * MICROS
    shuffled = list(events)
    rnd.shuffle(shuffled)
    problems: list[tuple[int, str]] = []
    outcome = sessionize_lines(
        [line(e) for e in shuffled],
        now,
        lambda n, m: problems.append((n, m)),
        RULES,
        limit=chunk,
        workers=1,
    )
    assert problems == []
    assert outcome.events == len(events)
    assert written(outcome) == body(sessionize(events, now, RULES), now)


def test_long_rooms_settle_as_the_stream_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # More events per room than a room holds before settling, over several sorted runs,
    # delivered up to 50 s late: rooms must settle many times and lose nothing.
    rnd = random.Random(3)
    events = []
    for n in range(3_000):
        at = n // 6 * 100 + rnd.randint(0, 5)  # a meeting of three per room every 100 s
        events.append(PresenceEvent(f"j{n}", JOINED, f"r{n % 2}", f"p{n % 9}", at * MICROS))
        events.append(PresenceEvent(f"l{n}", LEFT, f"r{n % 2}", f"p{n % 9}", (at + 40) * MICROS))
    events.sort(key=lambda e: e.at + rnd.randint(0, 50) * MICROS)
    settled: list[int] = []
    settle = Room.settle

    def counting(room: Room, until: int) -> list[MeetingSession]:
        final = settle(room, until)
        settled.append(len(final))
        return final

    monkeypatch.setattr(Room, "settle", counting)
    now = 60_000 * MICROS
    outcome = sessionize_lines(
        [line(e) for e in events], now, lambda n, m: None, limit=700, workers=1
    )
    assert written(outcome) == body(sessionize(events, now), now)
    assert len(outcome.result) == 1_000
    assert len(settled) >= 8
    assert sum(settled) >= 900


def test_invalid_lines_are_reported_with_their_numbers_and_left_out() -> None:
    good = line(PresenceEvent("e", JOINED, "r", "A", 0))
    problems: list[tuple[int, str]] = []
    outcome = sessionize_lines(
        [good, b"{nope", b"   ", b'{"id":"x"}', good],
        100 * MICROS,
        lambda n, m: problems.append((n, m)),
    )
    assert [n for n, _ in problems] == [2, 4]
    assert "malformed" in problems[0][1]
    assert "missing required field" in problems[1][1]
    assert (outcome.events, outcome.invalid) == (2, 2)
    assert len(outcome.result) == 1


def test_events_after_now_are_counted_and_left_out() -> None:
    lines = [
        line(PresenceEvent("a", JOINED, "r", "A", 0)),
        line(PresenceEvent("b", LEFT, "r", "A", 90 * MICROS)),
    ]
    outcome = sessionize_lines(lines, 60 * MICROS, lambda n, m: None)
    assert outcome.future == 1
    assert [m["ongoing"] for m in json.loads(written(outcome))["data"]] == [True]


def test_each_line_is_one_event_whichever_way_its_block_is_read() -> None:
    # A block of valid lines is decoded in one pass; one bad line sends the block through the
    # line-by-line reader, which must judge each line as the fast path would have.
    good = [line(PresenceEvent(f"e{n}", JOINED, "r", f"P{n}", n * MICROS)) for n in range(4)]
    two_on_one_line = good[0] + b" " + good[1]
    split = good[2][:20], good[2][20:]
    problems: list[tuple[int, str]] = []
    outcome = sessionize_lines(
        [
            *good,
            two_on_one_line,
            *split,
            b"",
            b'{"id":"s","type":"participant.left","room":"r","participant_id":"P0","at":"100"}',
            b'{"id":"b","type":"participant.left","room":"r","participant_id":"P0","at":true}',
        ],
        200 * MICROS,
        lambda n, m: problems.append((n, m)),
    )
    assert [n for n, _ in problems] == [5, 6, 7, 9, 10]
    assert "RFC 3339" in problems[3][1]
    assert outcome.events == 4
    clean = sessionize_lines(good, 200 * MICROS, lambda n, m: None)
    alone = [PresenceEvent(f"e{n}", JOINED, "r", f"P{n}", n * MICROS) for n in range(4)]
    assert written(outcome) == written(clean) == body(sessionize(alone, 200 * MICROS), 200 * MICROS)


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=253_402_300_799),
            st.floats(min_value=0, max_value=253_402_300_799, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_unix_seconds_read_in_blocks_are_the_microseconds_of_the_rules(
    seconds: list[float],
) -> None:
    # The block reader converts `at` with numpy; each must be `micros_from_unix` exactly.
    events = [
        PresenceEvent(f"e{n}", JOINED, f"r{n}", "A", micros_from_unix(at))
        for n, at in enumerate(seconds)
    ]
    lines = [
        json.dumps(
            {"id": e.id, "type": JOINED, "room": e.room, "participant_id": "A", "at": at}
        ).encode()
        for e, at in zip(events, seconds, strict=True)
    ]
    now = 253_402_300_799 * MICROS
    outcome = sessionize_lines(lines, now, lambda n, m: None, Rules.seconds(0, 1, 1))
    assert written(outcome) == body(sessionize(events, now, Rules.seconds(0, 1, 1)), now)


# Each example writes and reads spill files: a third of the profile's examples (100 of the
# default 300, 1,667 of the thorough one's 5,000) keep the suite within its time.
@settings(max_examples=max(50, settings().max_examples // 3))
@given(
    mixed_histories,
    st.integers(min_value=1, max_value=40),
    st.one_of(st.none(), st.floats(min_value=1e-4, max_value=1.0)),
    st.randoms(),
)
def test_any_partitioning_writes_what_the_in_memory_path_writes(
    events: list[PresenceEvent], limit: int, read: float | None, rnd: random.Random
) -> None:
    # `limit` forces a tiny budget; `read`, the part of a file read when the budget is full
    # (None: stdin), sets how many partitions the first split makes: from two, with splits
    # again, to thousands.
    now = 2_100 * MICROS
    shuffled = list(events)
    rnd.shuffle(shuffled)
    lines = [line(e) for e in shuffled]
    progress = None if read is None else (lambda: read)
    outcome = sessionize_lines(lines, now, lambda n, m: None, RULES, progress=progress, limit=limit)
    whole = sessionize_lines(lines, now, lambda n, m: None, RULES)
    assert whole.partitions == 1
    assert outcome.partitions > 1 or len(events) <= limit
    assert written(outcome) == written(whole)


def test_a_room_bigger_than_the_budget_runs_incrementally_within_it() -> None:
    # One room, twenty times the events the budget holds: it cannot be split by room, so it
    # runs over sorted runs of the budget's size; another room beside it takes the batch path.
    rnd = random.Random(5)
    events = []
    for n in range(2_000):
        at = n * 7 + rnd.randint(0, 3)
        events.append(PresenceEvent(f"j{n}", JOINED, "huge", f"p{n % 5}", at * MICROS, f"u{n % 5}"))
        events.append(PresenceEvent(f"l{n}", LEFT, "huge", f"p{n % 5}", (at + 30) * MICROS))
    events += [
        PresenceEvent("a", JOINED, "small", "x", 10 * MICROS),
        PresenceEvent("b", JOINED, "small", "y", 12 * MICROS),
    ]
    rnd.shuffle(events)
    now = 20_000 * MICROS
    outcome = sessionize_lines([line(e) for e in events], now, lambda n, m: None, limit=200)
    assert outcome.partitions > 1
    assert written(outcome) == body(sessionize(events, now), now)


def test_worker_processes_write_what_one_process_writes() -> None:
    # The partitions of a spilled input run in forked workers (two on a machine of two cores
    # or more); their meetings come back in any order and are written newest first.
    rnd = random.Random(11)
    events = []
    for n in range(3_000):
        room, at = f"room-{rnd.randrange(40)}", rnd.randrange(50_000)
        events.append(PresenceEvent(f"j{n}", JOINED, room, f"p{n}", at * MICROS, f"u{n % 7}"))
        events.append(PresenceEvent(f"l{n}", LEFT, room, f"p{n}", (at + 60) * MICROS))
    rnd.shuffle(events)
    lines = [line(e) for e in events]
    now = 60_000 * MICROS
    alone = sessionize_lines(lines, now, lambda n, m: None, limit=500, workers=1)
    together = sessionize_lines(lines, now, lambda n, m: None, limit=500, workers=2)
    assert together.partitions > 1
    assert written(together) == written(alone) == body(sessionize(events, now), now)


def test_names_that_look_like_the_next_meeting_do_not_cut_one() -> None:
    # Spooled meetings are cut where `,{"id":"` follows one: a name holding those characters
    # is written escaped, so it cannot be taken for the start of the next meeting.
    tricky = ['},{"id":"x', ',{"id":"', '\\",{\\"id\\":\\"', "plain"]
    events = []
    for n, name in enumerate(tricky * 30):
        at = n * 100
        user = PresenceEvent(f"j{n}", JOINED, f"room-{n % 9}", name, at * MICROS, name, name)
        events += [user, PresenceEvent(f"l{n}", LEFT, f"room-{n % 9}", name, (at + 50) * MICROS)]
    lines = [
        json.dumps(
            {
                "id": e.id,
                "type": e.type,
                "room": e.room,
                "participant_id": e.participant_id,
                "at": e.at / MICROS,
                "user_id": e.user_id,
                "user_name": e.user_name,
            }
        ).encode()
        for e in events
    ]
    now = 20_000 * MICROS
    spilled = sessionize_lines(lines, now, lambda n, m: None, limit=40, workers=1)
    assert spilled.partitions > 1
    assert written(spilled) == body(sessionize(events, now), now)


@given(
    st.lists(st.binary(min_size=0, max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    st.integers(min_value=0, max_value=40),
)
def test_a_file_cut_in_halves_keeps_every_line_once(lines: list[bytes], read: int) -> None:
    with tempfile.TemporaryFile() as file:
        file.write(b"".join(line + b"\n" for line in lines))
        file.seek(0)
        taken = [next(file) for _ in range(min(read, len(lines)))]
        first, second = halves(file, [b"ahead"])
        assert [line.rstrip(b"\n") for line in taken] + [*first, *second][1:] == lines
        assert next(iter(halves(file, [b"ahead"])[0])) == b"ahead"


def test_a_file_read_in_two_halves_gives_what_one_reader_gives(tmp_path: Path) -> None:
    rnd = random.Random(13)
    events = []
    for n in range(2_000):
        room, at = f"room-{rnd.randrange(30)}", rnd.randrange(40_000)
        events.append(PresenceEvent(f"j{n}", JOINED, room, f"p{n}", at * MICROS, f"u{n % 5}"))
        events.append(PresenceEvent(f"l{n}", LEFT, room, f"p{n}", (at + 45) * MICROS))
    rnd.shuffle(events)
    path = tmp_path / "events.ndjson"
    lines = [line(e) for e in events]
    lines.insert(3_000, b"{not json")
    path.write_bytes(b"\n".join(lines) + b"\n")
    now = 50_000 * MICROS
    problems: list[tuple[int, str]] = []
    with path.open("rb") as file:
        halved = sessionize_lines(
            file, now, lambda n, m: problems.append((n, m)), limit=700, workers=2, file=file
        )
    assert halved.partitions > 1
    assert [n for n, _ in problems] == [3_001]
    assert (halved.events, halved.invalid) == (4_000, 1)
    assert written(halved) == body(sessionize(events, now), now)


def room_line(event: RoomEvent) -> bytes:
    body: dict[str, object] = {
        "id": event.id,
        "type": event.type,
        "room": event.room,
        "at": event.at / MICROS,
    }
    if event.type == ROOM_SNAPSHOT:
        body["participants"] = [{"participant_id": p, "user_id": u} for p, u, _ in event.people]
    return json.dumps(body).encode()


@st.composite
def room_events(draw: st.DrawFn) -> list[RoomEvent]:
    found = []
    for n in range(draw(st.integers(min_value=0, max_value=6))):
        room = draw(st.sampled_from(["r", "s", "t", "only-snapshots"]))
        at = draw(st.integers(min_value=0, max_value=2_000)) * MICROS
        if draw(st.booleans()):
            found.append(RoomEvent(f"end{n}", ROOM_ENDED, room, at))
        else:
            chosen = sorted(draw(st.sets(st.sampled_from("ABCD"), max_size=3)))
            people = tuple((p, None, None) for p in chosen)
            found.append(RoomEvent(f"snap{n}", ROOM_SNAPSHOT, room, at, people))
    return found


@given(
    mixed_histories,
    room_events(),
    st.sampled_from([None, 5, 40]),
    st.randoms(),
)
def test_room_ends_and_snapshots_give_the_batch_result_in_memory_and_spilled(
    events: list[PresenceEvent], room: list[RoomEvent], limit: int | None, rnd: random.Random
) -> None:
    now = 2_100 * MICROS
    lines = [line(e) for e in events] + [room_line(e) for e in room]
    rnd.shuffle(lines)
    problems: list[tuple[int, str]] = []
    outcome = sessionize_lines(
        lines, now, lambda n, m: problems.append((n, m)), RULES, limit=limit, workers=1
    )
    assert problems == []
    assert outcome.events == len(events) + len(room)
    expected = sessionize(events, now, RULES, room_events=room)
    assert written(outcome) == body(expected, now)


def test_a_room_end_in_a_room_bigger_than_the_budget_closes_it() -> None:
    events = [PresenceEvent(f"j{n}", JOINED, "huge", f"p{n}", n * MICROS) for n in range(300)]
    end = RoomEvent("end", ROOM_ENDED, "huge", 500 * MICROS)
    lines = [line(e) for e in events] + [room_line(end)]
    outcome = sessionize_lines(lines, 1_000 * MICROS, lambda n, m: None, limit=50, workers=1)
    [session] = sessionize(events, 1_000 * MICROS, room_events=[end])
    assert session.end == 500 * MICROS
    assert written(outcome) == body([session], 1_000 * MICROS)
