"""Presence that never says goodbye: room snapshots, and the stale-presence timeout."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from roomlog.domain.batch import sessionize
from roomlog.domain.events import MICROS, ROOM_ENDED, ROOM_SNAPSHOT, RoomEvent
from roomlog.ingest.native import parse_event
from roomlog.views.daily import meeting_object
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api


def put(api: Api, room: str, people: list[str], at: float | None = None) -> Any:
    body: dict[str, Any] = {"participants": [{"participant_id": p} for p in people]}
    if at is not None:
        body["at"] = T0 + at
    return api.client.put(f"/v1/rooms/{room}/presence", json=body, headers=api.headers)


def meetings(api: Api) -> list[Any]:
    found: list[Any] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    return found


def test_a_snapshot_closes_the_missing_and_opens_the_new(api: Api) -> None:
    api.clock.set(T0 + 300)
    first = [joined("a", 0), joined("b", 5), joined("c", 10)]
    api.client.post("/v1/events", json=first, headers=api.headers)
    answer = put(api, "r", ["a", "d"], at=100)
    assert answer.status_code == 200, answer.text
    # One snapshot, which made three changes: b and c leave, d joins.
    assert answer.json() == {"accepted": 1, "duplicates": 0, "changed": 3}
    # The same snapshot again is the same event: a duplicate, changing nothing.
    again = put(api, "r", ["a", "d"], at=100).json()
    assert again == {"accepted": 0, "duplicates": 1, "changed": 0}
    last = [left("a", 200), left("d", 250)]
    api.client.post("/v1/events", json=last, headers=api.headers)
    # What the snapshot stood for, as native events.
    implied = [left("b", 100), left("c", 100), joined("d", 100)]
    parsed = [parse_event(json.dumps(b)) for b in first + last + implied]
    want = [
        msgspec.to_builtins(meeting_object(s, api.clock()))
        for s in sessionize(parsed, api.clock(), RULES, tenant="default")
    ]
    assert meetings(api) == want
    assert [p["duration"] for p in want[0]["participants"]] == [200, 95, 90, 150]


def test_an_empty_snapshot_empties_the_room(api: Api) -> None:
    api.clock.set(T0 + 300)
    api.client.post("/v1/events", json=[joined("a", 0), joined("b", 0)], headers=api.headers)
    assert put(api, "r", [], at=60).json()["changed"] == 2
    (meeting,) = meetings(api)
    assert (meeting["duration"], meeting["ongoing"]) == (60, False)
    presence = api.client.get("/v1/rooms/r/presence", headers=api.headers).json()
    assert presence["total_count"] == 0


def test_bad_snapshots_are_400_and_change_nothing(api: Api) -> None:
    api.clock.set(T0 + 300)
    api.client.post("/v1/events", json=[joined("a", 0)], headers=api.headers)
    bad: list[Any] = [
        {"participants": [{"participant_id": "x"}, {"participant_id": "x"}]},
        {"participants": [{"participant_id": ""}]},
        {"participants": "a"},
        {"people": []},
        {"participants": [], "at": T0 + 3600},
        {"participants": [], "at": "yesterday"},
    ]
    for body in bad:
        answer = api.client.put("/v1/rooms/r/presence", json=body, headers=api.headers)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) >= {"error", "info"}
    assert api.client.put("/v1/rooms/r/presence", json={"participants": []}).status_code == 400
    presence = api.client.get("/v1/rooms/r/presence", headers=api.headers).json()
    assert [p["id"] for p in presence["data"]] == ["a"]


def test_stale_presences_close_at_their_last_sighting(api: Api) -> None:
    api.clock.set(T0 + 10)
    api.client.post(
        "/v1/events", json=[joined("a", 0), joined("b", 0), joined("c", 0)], headers=api.headers
    )
    api.clock.set(T0 + 400)
    put(api, "r", ["a", "b", "c"], at=300)
    api.clock.set(T0 + 500)
    put(api, "r", ["a"], at=500)  # b and c leave at 500 by the snapshot
    stale = 3600 * MICROS
    api.clock.set(T0 + 500 + 3600 - 1)
    assert api.store.close_stale(api.clock(), stale) == 0
    api.clock.set(T0 + 500 + 3600)
    assert api.store.close_stale(api.clock(), stale) == 1
    api.tick()
    (meeting,) = meetings(api)
    assert (meeting["duration"], meeting["ongoing"]) == (500, False)
    assert api.store.close_stale(api.clock(), stale) == 0


def test_a_join_stamped_before_a_snapshot_but_sent_after_it_is_closed_by_it(api: Api) -> None:
    """SESSION-RULES step 1b: the snapshot is an event of the set, whatever the order."""
    api.clock.set(T0 + 300)
    api.client.post("/v1/events", json=[joined("a", 0)], headers=api.headers)
    assert put(api, "r", ["a"], at=100).json()["changed"] == 0
    api.client.post("/v1/events", json=[joined("b", 20)], headers=api.headers)  # late
    api.client.post("/v1/events", json=[left("a", 200)], headers=api.headers)
    (meeting,) = meetings(api)
    assert {p["participant_id"]: p["duration"] for p in meeting["participants"]} == {
        "a": 200,
        "b": 80,  # from its join to the snapshot, which did not list it
    }
    presence = api.client.get("/v1/rooms/r/presence", headers=api.headers).json()
    assert presence["total_count"] == 0


def test_native_room_ends_and_snapshots_are_events_of_the_set(api: Api) -> None:
    """`room.ended` and `room.snapshot` through POST /v1/events, delivered before the joins
    they close: the sessions are those of the whole set, as `sessionize` computes them."""
    api.clock.set(T0 + 1_000)
    end = {"id": "end-1", "type": "room.ended", "room": "r", "at": T0 + 300}
    snapshot = {
        "id": "snap-1",
        "type": "room.snapshot",
        "room": "r",
        "at": T0 + 600,
        "participants": [{"participant_id": "c", "user_name": "Cy"}],
    }
    first = api.client.post("/v1/events", json=[end, snapshot], headers=api.headers).json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (2, 0, [])
    later = [joined("a", 0), joined("b", 100), left("b", 200), joined("a", 400)]
    api.client.post("/v1/events", json=later, headers=api.headers)
    again = api.client.post("/v1/events", json=[end], headers=api.headers).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    other = {**end, "at": T0 + 301}
    refused = api.client.post("/v1/events", json=[other], headers=api.headers)
    assert refused.status_code == 400 and "already used" in refused.json()["info"]
    # The same, computed from the set.
    wanted = sessionize(
        [parse_event(json.dumps(b)) for b in later],
        api.clock(),
        RULES,
        tenant="default",
        room_events=[
            RoomEvent("end-1", ROOM_ENDED, "r", (T0 + 300) * MICROS),
            RoomEvent("snap-1", ROOM_SNAPSHOT, "r", (T0 + 600) * MICROS, (("c", None, "Cy"),)),
        ],
    )
    want = [msgspec.to_builtins(meeting_object(s, api.clock())) for s in wanted]
    assert meetings(api) == want
    # a and b until the end at 300; a again from 400, closed by the snapshot at 600, which
    # opened c, here since: that session is still going on.
    assert [(m["duration"], m["ongoing"]) for m in want] == [(600, True), (300, False)]
    presence = api.client.get("/v1/rooms/r/presence", headers=api.headers).json()
    assert [p["id"] for p in presence["data"]] == ["c"]


def test_bad_room_events_are_named(api: Api) -> None:
    api.clock.set(T0 + 1_000)
    bad: list[Any] = [
        {"id": "x", "type": "room.ended", "room": "r"},
        {"id": "x", "type": "room.ended", "room": "r", "at": T0, "participants": []},
        {"id": "x", "type": "room.snapshot", "room": "r", "at": T0},
        {
            "id": "x",
            "type": "room.snapshot",
            "room": "r",
            "at": T0,
            "participants": [{"participant_id": "a"}, {"participant_id": "a"}],
        },
        {"id": "x", "type": "room.ended", "room": "r", "at": T0 + 7_200},
    ]
    for body in bad:
        answer = api.client.post("/v1/events", json=body, headers=api.headers)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) >= {"error", "info"}
    assert meetings(api) == []
