"""Presence that never says goodbye: room snapshots, and the stale-presence timeout."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from roomlog.domain.batch import sessionize
from roomlog.domain.events import MICROS
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
    assert answer.json() == {"accepted": 3, "duplicates": 0}  # b, c leave; d joins
    # The same snapshot again stands for the same events: duplicates.
    assert put(api, "r", ["a", "d"], at=100).json() == {"accepted": 0, "duplicates": 3}
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
    assert put(api, "r", [], at=60).json()["accepted"] == 2
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
