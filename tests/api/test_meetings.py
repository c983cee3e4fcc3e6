"""Daily-compatible reads: /v1/meetings and friends, against `roomlog sessionize`."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.domain.batch import sessionize
from roomlog.domain.events import MICROS, PresenceEvent
from roomlog.ingest.native import parse_event
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from roomlog.views.daily import meeting_object
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api, Clock, make_project
from tests.helpers import histories


def expected(bodies: list[dict[str, Any]], now: int, project: str = "default") -> list[Any]:
    """What `roomlog sessionize --project PROJECT` says of the same events at `now`."""
    events = [parse_event(json.dumps(b)) for b in bodies]
    sessions = sessionize(events, now, RULES, tenant=project)
    return [msgspec.to_builtins(meeting_object(s, now)) for s in sessions]


def all_pages(api: Api, headers: dict[str, str] | None = None, **params: Any) -> list[Any]:
    found: list[Any] = []
    query: dict[str, Any] = {"limit": 7, **params}
    while True:
        page = api.client.get("/v1/meetings", params=query, headers=headers or api.headers)
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        found += data
        if len(data) < query["limit"]:
            return found
        query["starting_after"] = data[-1]["id"]


def history(seed: int, rooms: int = 4, meetings: int = 30) -> list[dict[str, Any]]:
    """Meetings with rejoins, short visits and lone stays, in random rooms."""
    rnd = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    clock = {f"room-{r}": rnd.uniform(0, 600) for r in range(rooms)}
    for _ in range(meetings):
        room = rnd.choice(sorted(clock))
        start = clock[room]
        for n in range(rnd.randint(1, 4)):
            pid = f"p{len(bodies)}"
            come = start + rnd.uniform(0, 60) * n
            go = come + rnd.choice([5, 40, rnd.uniform(60, 1500)])
            bodies += [joined(pid, come, room, f"user-{n}"), left(pid, go, room)]
        clock[room] = start + rnd.uniform(100, 3000)
    return bodies


def deliver(api: Api, bodies: list[dict[str, Any]], seed: int, batch: int = 25) -> None:
    """Post `bodies` roughly in time order, some late, some twice, moving the clock along."""
    rnd = random.Random(seed)
    arrivals = [(float(b["at"]) + rnd.choice([0.5, 1, 2, rnd.uniform(0, 900)]), b) for b in bodies]
    arrivals += [(float(b["at"]) + rnd.uniform(0, 300), b) for b in rnd.sample(bodies, 10)]
    arrivals.sort(key=lambda a: a[0])
    for i in range(0, len(arrivals), batch):
        chunk = arrivals[i : i + batch]
        api.clock.set(max(api.clock() / MICROS, chunk[-1][0]))
        answer = api.client.post("/v1/events", json=[b for _, b in chunk], headers=api.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rejected"] == []
        api.tick()


@pytest.mark.parametrize("seed", [1, 2])
def test_live_sessions_are_what_sessionize_computes(api: Api, seed: int) -> None:
    bodies = history(seed)
    deliver(api, bodies, seed)
    base = api.clock() / MICROS  # the clock never goes back
    for later in (0, 45, 700, 5000):
        api.clock.set(base + later)
        api.tick()
        assert all_pages(api) == expected(bodies, api.clock())
    listed = api.client.get("/v1/meetings", headers=api.headers).json()
    assert listed["total_count"] == len(expected(bodies, api.clock()))


def test_events_later_than_the_late_window_rebuild_the_room(api: Api) -> None:
    bodies = history(3, rooms=1, meetings=12)
    api.clock.set(max(float(b["at"]) for b in bodies) + 3 * 3600)
    early = bodies[: len(bodies) // 2]
    assert api.client.post("/v1/events", json=bodies[len(early) :], headers=api.headers)
    api.tick()
    answer = api.client.post("/v1/events", json=early, headers=api.headers)
    assert answer.json()["accepted"] == len(early)
    assert all_pages(api) == expected(bodies, api.clock())


def settled_room(api: Api, seed: int) -> list[dict[str, Any]]:
    """One room, meetings over many hours, posted in order as they happen and read an hour
    after the last: the room settles behind them and keeps checkpoints. Its events."""
    bodies = sorted(history(seed, rooms=1, meetings=60), key=lambda b: float(b["at"]))
    for i in range(0, len(bodies), 10):
        api.clock.set(float(bodies[i + 9 if i + 9 < len(bodies) else -1]["at"]) + 1)
        api.client.post("/v1/events", json=bodies[i : i + 10], headers=api.headers)
    api.clock.set(float(bodies[-1]["at"]) + 3600)
    api.tick()
    return bodies


def test_a_late_event_re_derives_its_room_from_a_checkpoint_not_its_whole_log(api: Api) -> None:
    bodies = settled_room(api, 21)
    # Then an event from two thirds of the way through arrives, hours late.
    middle = float(bodies[2 * len(bodies) // 3]["at"]) - T0
    late = [joined("late-a", middle + 1, "room-0"), left("late-a", middle + 400, "room-0")]
    before = api.store.rebuild_events
    answer = api.client.post("/v1/events", json=late, headers=api.headers)
    assert answer.json()["accepted"] == 2
    read = api.store.rebuild_events - before
    assert 0 < read < len(bodies) // 2  # the events since the checkpoint, not all of them
    assert all_pages(api) == expected(bodies + late, api.clock())
    # And a room end older than every checkpoint: the whole log, still exact.
    before = api.store.rebuild_events
    end = {"id": "end-early", "type": "room.ended", "room": "room-0", "at": T0 + 1}
    assert api.client.post("/v1/events", json=end, headers=api.headers).status_code == 200
    assert api.store.rebuild_events - before == len(bodies) + len(late)
    assert api.client.get("/v1/meetings", headers=api.headers).json()["total_count"] > 0


def test_late_events_of_one_request_rebuild_from_before_the_earliest_of_them(api: Api) -> None:
    """Two late events in one request, the later one first: the room is re-derived from a
    checkpoint before both (one named by the first late event met would leave the other out
    of its room's sessions until a full rebuild)."""
    bodies = settled_room(api, 22)
    early = float(bodies[len(bodies) // 4]["at"]) - T0
    later = float(bodies[3 * len(bodies) // 4]["at"]) - T0
    late = [
        joined("late-b", later + 1, "room-0"),
        left("late-b", later + 400, "room-0"),
        joined("late-a", early + 1, "room-0"),
        left("late-a", early + 400, "room-0"),
    ]
    assert api.client.post("/v1/events", json=late, headers=api.headers).json()["accepted"] == 4
    assert all_pages(api) == expected(bodies + late, api.clock())


def test_a_history_posted_hours_later_applies_its_late_deliveries_incrementally(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = sorted(history(8, rooms=1, meetings=12), key=lambda b: float(b["at"]))
    api.clock.set(float(bodies[-1]["at"]) + 3 * 3600)  # the whole history is hours old
    # An event comes behind the two that follow it when they are less than the late window
    # (600 s) after it: late, counted from the newest event of its room, but not too late.
    arrivals, i, swapped = bodies[:4], 4, 0
    while i < len(bodies):
        following = bodies[i + 1 : i + 3]
        if len(following) == 2 and float(following[-1]["at"]) - float(bodies[i]["at"]) < 590:
            arrivals += [*following, bodies[i]]
            i, swapped = i + 3, swapped + 1
        else:
            arrivals.append(bodies[i])
            i += 1
    assert swapped > 5
    with caplog.at_level("INFO", logger="roomlog.store"):
        for i in range(0, len(arrivals), 4):
            answer = api.client.post("/v1/events", json=arrivals[i : i + 4], headers=api.headers)
            assert answer.json()["accepted"] == len(arrivals[i : i + 4])
    assert not [r for r in caplog.records if "rebuilding" in r.getMessage()]
    assert all_pages(api) == expected(bodies, api.clock())


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(rooms=("x", "y"), latest=1500 * MICROS, step=10 * MICROS), st.randoms())
def test_any_history_in_any_order(
    api: Api, events: list[PresenceEvent], rnd: random.Random
) -> None:
    project, key = make_project(api.database, f"p-{uuid.uuid4()}")  # one per example
    headers = {"Authorization": f"Bearer {key}"}
    bodies = [
        {
            "id": e.id,
            "type": e.type,
            "room": e.room,
            "participant_id": e.participant_id,
            "at": T0 + e.at / MICROS,
        }
        for e in events
    ]
    rnd.shuffle(bodies)
    api.clock.set(T0 + 1500)
    for i in range(0, len(bodies), 5):
        api.client.post("/v1/events", json=bodies[i : i + 5], headers=headers)
    api.clock.set(T0 + 1600)
    api.tick()
    assert all_pages(api, headers) == expected(bodies, api.clock(), project.name)


def test_a_session_split_at_the_instant_of_posting_gets_its_participants_by_time_alone(
    api: Api,
) -> None:
    # Posted at the instant the 10-minute rule splits B's stay: the new session has no
    # records yet (they have no length), and time alone must give it B's.
    bodies = [joined("A", 0), joined("B", 0), left("A", 900)]
    api.clock.set(T0 + 1500)
    api.client.post("/v1/events", json=bodies, headers=api.headers)
    api.clock.set(T0 + 1600)
    api.tick()
    assert all_pages(api) == expected(bodies, api.clock())
    assert [p["participant_id"] for p in all_pages(api)[0]["participants"]] == ["B"]


def test_cursors_page_both_ways(api: Api) -> None:
    bodies = history(4, meetings=20)
    api.clock.set(T0 + 100_000)
    api.client.post("/v1/events", json=bodies, headers=api.headers)
    everything = all_pages(api)
    assert len(everything) > 10
    ids = [m["id"] for m in everything]
    second = api.client.get(
        "/v1/meetings", params={"limit": 3, "starting_after": ids[2]}, headers=api.headers
    ).json()["data"]
    assert [m["id"] for m in second] == ids[3:6]
    before = api.client.get(
        "/v1/meetings", params={"limit": 3, "ending_before": ids[6]}, headers=api.headers
    ).json()["data"]
    assert [m["id"] for m in before] == ids[3:6]
    start_times = [m["start_time"] for m in everything]
    assert start_times == sorted(start_times, reverse=True)


def test_filters(api: Api) -> None:
    bodies = history(5, meetings=20)
    last = max(float(b["at"]) for b in bodies) - T0
    bodies.append(joined("late-1", last + 10, "room-0"))
    bodies.append(joined("late-2", last + 12, "room-0"))
    api.clock.set(T0 + last + 100)
    stored = api.client.post("/v1/events", json=bodies, headers=api.headers).json()
    assert stored["accepted"] == len(bodies)
    api.tick()
    everything = all_pages(api)

    def listed(**params: Any) -> list[str]:
        return [m["id"] for m in all_pages(api, **params)]

    assert listed(room="room-1") == [m["id"] for m in everything if m["room"] == "room-1"]
    middle = sorted(m["start_time"] for m in everything)[len(everything) // 2]
    assert listed(timeframe_start=middle) == [
        m["id"] for m in everything if m["start_time"] >= middle
    ]
    assert listed(timeframe_end=middle) == [m["id"] for m in everything if m["start_time"] < middle]
    # RFC 3339 (any offset) selects what unix seconds do.
    as_text = datetime.fromtimestamp(middle, tz=timezone(timedelta(hours=-5))).isoformat()
    assert listed(timeframe_start=as_text) == listed(timeframe_start=middle)
    zulu = datetime.fromtimestamp(middle, tz=UTC).isoformat().replace("+00:00", "Z")
    assert listed(timeframe_end=zulu) == listed(timeframe_end=middle)
    assert listed(ongoing="true") == [m["id"] for m in everything if m["ongoing"]]
    assert len(listed(ongoing="true")) == 1
    assert listed(ongoing="false") == [m["id"] for m in everything if not m["ongoing"]]
    page = api.client.get(
        "/v1/meetings", params={"no_participants": "true", "room": "room-1"}, headers=api.headers
    ).json()
    assert page["data"] and all("participants" not in m for m in page["data"])
    assert page["total_count"] == len(listed(room="room-1"))
    counted = api.client.get(
        "/v1/meetings", params={"ongoing": "false", "limit": 1}, headers=api.headers
    ).json()
    assert counted["total_count"] == len(everything) - 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"timeframe_start": "monday"}, "timeframe_start"),
        ({"timeframe_end": 1.5}, "timeframe_end"),
        ({"timeframe_end": "2024-01-01T00:00:00"}, "timeframe_end"),  # no offset
        ({"timeframe_start": "-5"}, "timeframe_start"),
        ({"starting_after": "no-such-meeting"}, "starting_after"),
        ({"ending_before": "no-such-meeting"}, "ending_before"),
        ({"ongoing": "maybe"}, "ongoing"),
    ],
)
def test_invalid_parameters_are_named(api: Api, params: dict[str, Any], named: str) -> None:
    answer = api.client.get("/v1/meetings", params=params, headers=api.headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid-request-error"
    assert answer.json()["info"].startswith(f"{named}:")


def test_one_meeting_and_its_participants(api: Api) -> None:
    bodies = [joined("a", 0, user="ana"), joined("b", 5), joined("c", 8), left("b", 60)]
    bodies += [left("c", 70), left("a", 100)]
    api.clock.set(T0 + 200)
    api.client.post("/v1/events", json=bodies, headers=api.headers)
    [meeting] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    one = api.client.get(f"/v1/meetings/{meeting['id']}", headers=api.headers).json()
    assert one == {k: v for k, v in meeting.items() if k != "participants"}
    assert one == {
        "id": meeting["id"],
        "room": "r",
        "start_time": T0,
        "duration": 100,
        "ongoing": False,
        "max_participants": 3,
    }
    url = f"/v1/meetings/{meeting['id']}/participants"
    people = api.client.get(url, headers=api.headers).json()["data"]
    assert people == meeting["participants"]
    assert [p["participant_id"] for p in people] == ["a", "b", "c"]
    assert people[0] == {
        "user_id": "ana",
        "user_name": "Ana",
        "participant_id": "a",
        "join_time": T0,
        "duration": 100,
    }

    def ids(**params: Any) -> list[str]:
        answer = api.client.get(url, params=params, headers=api.headers)
        assert answer.status_code == 200, answer.text
        return [p["participant_id"] for p in answer.json()["data"]]

    assert ids(joined_after="a") == ["b", "c"]
    assert ids(joined_before="c") == ["a", "b"]
    assert ids(limit=1) == ["a"]
    answer = api.client.get(url, params={"joined_after": "zed"}, headers=api.headers)
    assert answer.status_code == 400
    assert answer.json()["info"].startswith("joined_after:")


def test_unknown_and_other_projects_meetings_are_404(api: Api) -> None:
    api.clock.set(T0 + 200)
    api.client.post("/v1/events", json=[joined("a", 0), joined("b", 1)], headers=api.headers)
    [meeting] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    _, other_key = make_project(api.database, "other")
    other = {"Authorization": f"Bearer {other_key}"}
    for url in (f"/v1/meetings/{meeting['id']}", f"/v1/meetings/{meeting['id']}/participants"):
        theirs = api.client.get(url, headers=other)
        unknown = api.client.get(url.replace(meeting["id"], "0" * 36), headers=api.headers)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["error"] == unknown.json()["error"] == "not-found"
    assert api.client.get("/v1/meetings", headers=other).json() == {"total_count": 0, "data": []}
    starting_after = api.client.get(
        "/v1/meetings", params={"starting_after": meeting["id"]}, headers=other
    )
    assert starting_after.status_code == 400


def test_sessions_begin_and_split_by_time_alone(api: Api) -> None:
    api.clock.set(T0 + 1)
    api.client.post("/v1/events", json=[joined("a", 0)], headers=api.headers)
    api.tick()
    assert api.client.get("/v1/meetings", headers=api.headers).json()["data"] == []
    api.clock.set(T0 + 29.9)
    api.tick()
    assert api.client.get("/v1/meetings", headers=api.headers).json()["data"] == []
    api.clock.set(T0 + 30)
    api.tick()
    [meeting] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    assert (meeting["start_time"], meeting["ongoing"], meeting["duration"]) == (T0, True, 30)
    # A second participant comes and goes; 10 minutes alone after that splits the session.
    api.clock.set(T0 + 100)
    answer = api.client.post(
        "/v1/events", json=[joined("b", 40), left("b", 100)], headers=api.headers
    )
    assert answer.json()["accepted"] == 2
    api.clock.set(T0 + 699)
    api.tick()
    assert len(api.client.get("/v1/meetings", headers=api.headers).json()["data"]) == 1
    api.clock.set(T0 + 700)
    api.tick()
    newer, older = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    assert (older["start_time"], older["duration"], older["ongoing"]) == (T0, 700, False)
    assert (newer["start_time"], newer["ongoing"]) == (T0 + 700, True)


def test_the_background_tick_applies_time_without_events(database: Any) -> None:
    clock = Clock(T0 + 1)
    _, key = make_project(database, "ticking")
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(database, Settings(rules=RULES), clock=clock, tick=0.02, wait="applied")
    with TestClient(app) as client:
        client.post("/v1/events", json=[joined("a", 0)], headers=headers)
        clock.set(T0 + 31)
        for _ in range(500):  # the tick runs every 20 ms; give it up to 500 polls
            data = client.get("/v1/meetings", headers=headers).json()["data"]
            if data:
                break
        assert [(m["start_time"], m["ongoing"]) for m in data] == [(T0, True)]


def test_rebuild_reproduces_what_the_live_path_stored(api: Api) -> None:
    bodies = history(6)
    deliver(api, bodies, 6)
    api.clock.set(api.clock() / MICROS + 60)
    api.tick()
    live = all_pages(api)
    assert api.store.rebuild(api.project, api.clock()) == 4
    assert all_pages(api) == live == expected(bodies, api.clock())


def test_stores_taking_turns_on_a_room_each_see_what_the_other_wrote(api: Api) -> None:
    """Each store keeps the rooms it wrote; a write by another one (another process) since
    must be read from the row, not taken from what the first one kept."""
    bodies = sorted(history(11, rooms=2, meetings=16), key=lambda b: float(b["at"]))
    stores = [api.store, Store(api.database, Settings(rules=RULES))]
    api.clock.set(float(bodies[-1]["at"]) + 60)
    for n, body in enumerate(bodies):
        event = parse_event(json.dumps(body))
        assert isinstance(event, PresenceEvent)
        [result] = stores[n % 2].ingest([Submission(api.project, [(0, event)])], api.clock())
        assert result.accepted == 1
    assert all_pages(api) == expected(bodies, api.clock())
