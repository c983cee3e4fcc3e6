"""`GET /v1/meetings/{id}/attendance`: one record per person, against `roomlog sessionize`."""

from __future__ import annotations

import json

import msgspec

from roomlog.domain.batch import sessionize
from roomlog.ingest.native import parse_event
from roomlog.views.people import attendance_objects
from tests.api.test_meetings import history
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api


def test_a_reconnect_and_a_second_device_make_one_line(api: Api) -> None:
    api.clock.set(T0 + 400)
    bodies = [
        joined("ada-laptop", 0, user="ada"),
        joined("ben", 5, user="ben"),
        left("ada-laptop", 100),
        joined("ada-laptop-2", 100, user="ada"),  # a reconnect in the same second
        joined("ada-phone", 150, user="ada"),  # a second device while the laptop is on
        left("ada-phone", 250),
        left("ben", 200),
        joined("guest", 40),
        left("guest", 90),
    ]
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).status_code == 200
    [meeting] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    answer = api.client.get(f"/v1/meetings/{meeting['id']}/attendance", headers=api.headers)
    assert answer.status_code == 200, answer.text
    ada, ben, guest = answer.json()["data"]
    assert ada["person"] == "ada"
    assert ada["participant_ids"] == ["ada-laptop", "ada-laptop-2", "ada-phone"]
    assert ada["intervals"] == [{"join_time": int(T0), "leave_time": None, "duration": 400}]
    assert (ada["attended"], ada["share"], ada["last_leave"]) == (400, 1.0, None)
    assert (ben["person"], ben["attended"], ben["share"]) == ("ben", 195, 0.4875)
    assert (guest["person"], guest["user_id"], guest["attended"]) == ("guest", None, 50)
    assert len(meeting["participants"]) == 5  # Daily's view stays one record per presence


def test_every_sessions_attendance_is_what_sessionize_gives(api: Api) -> None:
    bodies = history(seed=8)
    api.clock.set(max(float(b["at"]) for b in bodies) + 60)
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).status_code == 200
    api.tick()
    events = [parse_event(json.dumps(b)) for b in bodies]
    sessions = sessionize(events, api.clock(), RULES, tenant=api.project.name)
    assert sessions
    for session in sessions:
        answer = api.client.get(f"/v1/meetings/{session.id}/attendance", headers=api.headers)
        expected = msgspec.to_builtins(attendance_objects(session, api.clock()))
        assert answer.json()["data"] == expected


def test_an_unknown_or_another_projects_meeting_is_404(api: Api) -> None:
    answer = api.client.get("/v1/meetings/nope/attendance", headers=api.headers)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not-found"
