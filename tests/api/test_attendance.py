"""`GET /v1/meetings/{id}/attendance`: one record per person, against `roomlog sessionize`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from roomlog.domain.batch import sessionize
from roomlog.domain.people import people
from roomlog.ingest.native import parse_event
from roomlog.views.exports import PEOPLE_COLUMNS
from roomlog.views.people import attendance_objects
from tests.api.test_meetings import history
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api, make_project


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


def test_people_over_many_sessions_sum_what_each_session_gives(api: Api) -> None:
    bodies = history(seed=9, rooms=3, meetings=25)
    api.clock.set(max(float(b["at"]) for b in bodies) + 60)
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).status_code == 200
    api.tick()
    events = [parse_event(json.dumps(b)) for b in bodies]
    now = api.clock()
    sessions = sessionize(events, now, RULES, tenant=api.project.name)
    expected: dict[str, dict[str, int]] = {}
    for session in sessions:
        for person in attendance_objects(session, now):
            seen = expected.setdefault(person.person, {"sessions": 0, "micros": 0})
            seen["sessions"] += 1
    for found in [p for s in sessions for p in people(s, now)]:
        expected[found.person]["micros"] += found.attended
    listed: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 3, "detail": "true"}
    while True:
        answer = api.client.get("/v1/attendance", params=query, headers=api.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total_count"] == len(expected)
        listed += body["data"]
        if len(body["data"]) < 3:
            break
        query["starting_after"] = body["data"][-1]["person"]
    assert [p["person"] for p in listed] == sorted(expected)
    for record in listed:
        want = expected[str(record["person"])]
        assert record["sessions"] == want["sessions"] == len(record["detail"])
        assert record["attended"] == want["micros"] // 1_000_000
    one_room = api.client.get(
        "/v1/attendance", params={"room": "room-0"}, headers=api.headers
    ).json()
    in_room = {p.person for s in sessions if s.room == "room-0" for p in people(s, now)}
    assert {p["person"] for p in one_room["data"]} == in_room
    someone = listed[0]["person"]
    alone = api.client.get("/v1/attendance", params={"person": someone}, headers=api.headers)
    assert [p["person"] for p in alone.json()["data"]] == [someone]
    back = api.client.get(
        "/v1/attendance",
        params={"ending_before": listed[3]["person"], "limit": 2},
        headers=api.headers,
    ).json()
    assert [p["person"] for p in back["data"]] == [p["person"] for p in listed[1:3]]


def test_a_window_keeps_the_sessions_that_started_in_it(api: Api) -> None:
    api.clock.set(T0 + 5_000)
    bodies = [joined("a", 0, user="ann"), joined("b", 5, user="bo"), left("a", 100), left("b", 100)]
    bodies += [joined("a2", 3_000, user="ann"), joined("c", 3_001), left("a2", 3_100)]
    bodies += [left("c", 3_100)]
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).status_code == 200
    later = api.client.get(
        "/v1/attendance", params={"timeframe_start": int(T0) + 1_000}, headers=api.headers
    ).json()
    assert later["total_count"] == 2
    assert [(p["person"], p["sessions"], p["attended"]) for p in later["data"]] == [
        ("ann", 1, 100),
        ("c", 1, 99),
    ]
    both = api.client.get("/v1/attendance", headers=api.headers).json()
    ann = next(p for p in both["data"] if p["person"] == "ann")
    assert (ann["sessions"], ann["attended"], ann["first_seen"]) == (2, 200, int(T0))
    assert ann["last_seen"] == int(T0) + 3_100
    assert "detail" not in ann


def test_the_csv_and_roomlog_export_people_give_the_records_of_the_api(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    bodies = history(seed=10, rooms=2, meetings=12)
    api.clock.set(max(float(b["at"]) for b in bodies) + 3_600)
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).status_code == 200
    api.tick()
    listed = api.client.get("/v1/attendance", params={"room": "room-1"}, headers=api.headers)
    served = api.client.get("/v1/attendance.csv", params={"room": "room-1"}, headers=api.headers)
    assert served.status_code == 200, served.text
    assert served.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(served.text)))
    assert list(table[0]) == list(PEOPLE_COLUMNS)
    assert [(r["person"], int(r["sessions"]), int(r["attended"])) for r in table] == [
        (p["person"], p["sessions"], p["attended"]) for p in listed.json()["data"]
    ]
    out = tmp_path / "people.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomlog",
            "export",
            "people",
            "--room",
            "room-1",
            "-o",
            str(out),
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == served.content


def test_a_project_keyed_by_user_name_groups_the_joins_that_carry_only_a_name(
    api: Api, database_url: str
) -> None:
    api.clock.set(T0 + 400)
    named = [
        {**joined("phone", 0), "user_name": "Dee"},
        {**joined("laptop", 30), "user_name": "Dee"},
        joined("other", 10),
        left("phone", 60),
    ]
    assert api.client.post("/v1/events", json=named, headers=api.headers).status_code == 200
    [meeting] = api.client.get("/v1/meetings", headers=api.headers).json()["data"]
    path = f"/v1/meetings/{meeting['id']}/attendance"
    by_id = api.client.get(path, headers=api.headers).json()["data"]
    assert [p["person"] for p in by_id] == ["phone", "other", "laptop"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomlog",
            "projects",
            "set",
            "--person-key",
            "user_name",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "keyed by user_name" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "roomlog", "projects", "show", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "person key (who a person is in attendance): user_name" in shown.stdout
    # A new key reads the project afresh (keys are remembered for a few seconds).
    _, key = make_project(api.database, "default")
    by_name = api.client.get(path, headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert [(p["person"], p["participant_ids"], p["attended"]) for p in by_name] == [
        ("Dee", ["phone", "laptop"], 400),
        ("other", ["other"], 390),
    ]
    people_csv = api.client.get(
        "/v1/attendance.csv", headers={"Authorization": f"Bearer {key}"}
    ).text
    assert people_csv.splitlines()[1].startswith("Dee,")
