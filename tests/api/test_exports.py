"""CSV exports and chat: rows against the JSON APIs, chat routed by time, links that expire."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest

from roomlog.api.exports import CHAT_AUDIENCE
from roomlog.domain.events import MICROS, rfc3339
from roomlog.store.queries import EXPORT_PAGE
from roomlog.views.exports import ATTENDANCE_COLUMNS, SESSION_COLUMNS
from tests.api.test_meetings import all_pages, history
from tests.bodies import joined, left
from tests.fixtures import T0, Api, make_project


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def chat(pid: str, at: float, text: str, room: str = "r", **extra: Any) -> dict[str, Any]:
    return {
        "type": "chat.message",
        "room": room,
        "participant_id": pid,
        "text": text,
        "at": T0 + at,
        **extra,
    }


def when(seconds: float) -> str:
    """The instant `seconds` after T0, as the APIs write it."""
    return rfc3339(round((T0 + seconds) * MICROS))


def post(api: Api, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Any:
    answer = api.client.post("/v1/events", json=bodies, headers=headers or api.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def follow(api: Api, link: str) -> Any:
    """GET a chat link as its holder would: no Authorization header."""
    parts = urlsplit(link)
    return api.client.get(f"{parts.path}?{parts.query}")


def test_attendance_csv_agrees_with_the_participants_apis(api: Api) -> None:
    bodies = history(5, rooms=2, meetings=12)
    api.clock.set(T0 + 100_000)
    post(api, bodies)
    meetings = all_pages(api)
    assert meetings
    for meeting in meetings:
        answer = api.client.get(f"/v1/meetings/{meeting['id']}/attendance.csv", headers=api.headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.text.splitlines()[0] == ",".join(ATTENDANCE_COLUMNS)
        exported = rows(answer.text)
        people = api.client.get(
            f"/v1/meeting-sessions/{meeting['id']}/participants",
            params={"perPage": 100},
            headers=api.headers,
        ).json()["data"]
        daily = api.client.get(
            f"/v1/meetings/{meeting['id']}/participants", headers=api.headers
        ).json()["data"]
        assert [r["participant_id"] for r in exported] == [p["participantId"] for p in people]
        for row, person in zip(exported, people, strict=True):
            records = [d for d in daily if d["participant_id"] == row["participant_id"]]
            assert row["session_id"] == meeting["id"]
            assert row["room"] == meeting["room"]
            assert row["user_name"] == (person["name"] or "")
            assert row["first_join"] == person["timelog"][0]["start"]
            assert row["last_leave"] == person["timelog"][-1]["end"]
            assert int(row["presences"]) == len(person["timelog"]) == len(records)
            # Whole seconds of the exact total: at least the sum of the floored parts, and
            # less than that sum plus one second per part.
            floored = sum(d["duration"] for d in records)
            assert floored <= int(row["time_present"]) < floored + len(records)
            share = 100 * int(row["time_present"]) / max(meeting["duration"], 1)
            assert (
                abs(float(row["share_percent"]) - share) < 100 / max(meeting["duration"], 1) + 0.1
            )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"room": "room-1"},
        {"ongoing": "false"},
        {"timeframe_start": T0 + 3000, "timeframe_end": T0 + 20_000},
    ],
)
def test_meetings_csv_lists_what_the_list_endpoint_lists(api: Api, params: dict[str, Any]) -> None:
    bodies = history(6, rooms=3, meetings=25)
    bodies.append(joined("still-here", 30_000, "room-1"))
    api.clock.set(T0 + 40_000)
    post(api, bodies)
    api.tick()
    listed = all_pages(api, **params)
    answer = api.client.get("/v1/meetings.csv", params=params, headers=api.headers)
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines()[0] == ",".join(SESSION_COLUMNS)
    exported = rows(answer.text)
    assert [r["id"] for r in exported] == [m["id"] for m in listed]
    for row, meeting in zip(exported, listed, strict=True):
        assert row["room"] == meeting["room"]
        assert row["start_time"].startswith(rfc3339(meeting["start_time"] * MICROS)[:19])
        assert int(row["duration"]) == meeting["duration"]
        assert row["ongoing"] == str(meeting["ongoing"]).lower()
        assert (row["end_time"] == "") == meeting["ongoing"]
        assert int(row["max_participants"]) == meeting["max_participants"]
        assert int(row["participants"]) == len(
            {p["participant_id"] for p in meeting["participants"]}
        )


def test_meetings_csv_pages_through_a_long_history(api: Api) -> None:
    count = EXPORT_PAGE + 37
    bodies = []
    for n in range(count):
        bodies += [
            joined(f"p{n}", n * 100, f"room-{n % 3}"),
            left(f"p{n}", n * 100 + 40, f"room-{n % 3}"),
        ]
    api.clock.set(T0 + count * 100 + 1000)
    post(api, bodies)
    exported = rows(api.client.get("/v1/meetings.csv", headers=api.headers).text)
    assert len(exported) == count
    assert len({r["id"] for r in exported}) == count
    starts = [r["start_time"] for r in exported]
    assert starts == sorted(starts, reverse=True)


def test_exports_refuse_bad_input_in_dailys_shape(api: Api) -> None:
    cases = [
        ("/v1/meetings.csv", {"timeframe_start": "soon"}, api.headers, 400),
        ("/v1/meetings.csv", {"ongoing": "perhaps"}, api.headers, 400),
        ("/v1/meetings.csv", {}, {}, 400),
        ("/v1/meetings.csv", {}, {"Authorization": "Bearer rl_nope_nope"}, 401),
        ("/v1/meetings/nope/attendance.csv", {}, api.headers, 404),
    ]
    for path, params, headers, status in cases:
        answer = api.client.get(path, params=params, headers=headers)
        assert answer.status_code == status, (path, params, answer.text)
        assert set(answer.json()) >= {"error", "info"}


def test_spreadsheet_formulas_are_written_as_text(api: Api) -> None:
    api.clock.set(T0 + 1000)
    person = joined("=HYPERLINK(1)", 0)
    person["user_name"] = "@SUM(A1)"
    post(api, [person, left("=HYPERLINK(1)", 60)])
    [meeting] = all_pages(api)
    text = api.client.get(f"/v1/meetings/{meeting['id']}/attendance.csv", headers=api.headers).text
    [row] = rows(text)
    assert row["participant_id"] == "'=HYPERLINK(1)"
    assert row["user_name"] == "'@SUM(A1)"


# -- chat ---------------------------------------------------------------------------------


def split_meeting(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """SESSION-RULES example 5 with chat: sessions 0-800 and 800-2000, split at 800."""
    api.clock.set(T0 + 3000)
    people = [
        joined("A", 0, user="ana"),
        joined("B", 100, user="ben"),
        left("B", 200),
        left("A", 2000),
        joined("Z", 0, room="elsewhere"),
        left("Z", 100, room="elsewhere"),
    ]
    messages = [
        chat("A", 150, "hello"),
        chat("B", 199.5, "bye, =1+1"),
        chat("A", 799.999, "anyone?"),
        chat("A", 800, "new session"),
        chat("A", 1999, "leaving"),
        chat("A", 2500, "after the end"),
        chat("Z", 50, "another room", room="elsewhere"),
    ]
    report = post(api, people + messages)
    assert (report["accepted"], report["rejected"]) == (len(people) + len(messages), [])
    second, first = [
        m
        for m in api.client.get("/v1/meeting-sessions", headers=api.headers).json()["data"]
        if m["meetingId"] == "r"
    ]
    return first, second


def test_chat_goes_to_the_session_it_falls_in_across_a_split(api: Api) -> None:
    first, second = split_meeting(api)
    assert first["end"] == second["start"]
    assert first["chatLink"] and second["chatLink"]
    one = follow(api, first["chatLink"])
    assert one.status_code == 200, one.text
    assert one.headers["content-type"].startswith("text/csv")
    assert rows(one.text) == [
        {
            "timestamp": when(150),
            "participant": "A",
            "name": "Ana",
            "text": "hello",
        },
        {
            "timestamp": when(199.5),
            "participant": "B",
            "name": "Ben",
            "text": "bye, =1+1",
        },
        {
            "timestamp": when(799.999),
            "participant": "A",
            "name": "Ana",
            "text": "anyone?",
        },
    ]
    two = rows(follow(api, second["chatLink"]).text)
    assert [r["text"] for r in two] == ["new session", "leaving"]
    # The session detail gives the same link to the same chat.
    detail = api.client.get(f"/v1/meeting-sessions/{first['id']}", headers=api.headers).json()
    assert rows(follow(api, detail["chatLink"]).text) == rows(one.text)
    # An API key works in place of a link.
    keyed = api.client.get(f"/v1/meeting-sessions/{first['id']}/chat.csv", headers=api.headers)
    assert rows(keyed.text) == rows(one.text)


def test_a_session_without_chat_has_no_chat_link(api: Api) -> None:
    api.clock.set(T0 + 1000)
    post(api, [joined("A", 0), left("A", 60)])
    [session] = api.client.get("/v1/meeting-sessions", headers=api.headers).json()["data"]
    assert session["chatLink"] is None
    empty = api.client.get(f"/v1/meeting-sessions/{session['id']}/chat.csv", headers=api.headers)
    assert empty.text.splitlines() == ["timestamp,participant,name,text"]


def test_chat_is_stored_once_and_judged_like_events(api: Api) -> None:
    api.clock.set(T0 + 1000)
    message = chat("A", 10, "hi")
    assert post(api, [message, message])["accepted"] == 1
    again = post(api, [message])
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    named = chat("A", 10, "hi", id="m-1")
    assert post(api, [named])["accepted"] == 1
    clash = post(api, [chat("A", 10, "edited", id="m-1"), chat("A", 11, "ok")])
    assert clash["accepted"] == 1
    assert [r["index"] for r in clash["rejected"]] == [0]
    bad = post(
        api,
        [
            chat("A", 12, ""),
            chat("A", 12, "x" * 16_385),
            {"type": "chat.message", "room": "r", "at": T0},
            chat("A", 10_000, "from the future"),
            chat("A", 13, "fine"),
        ],
    )
    assert bad["accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in bad["rejected"]}
    assert sorted(reasons) == [0, 1, 2, 3]
    assert "text" in reasons[0] and "text" in reasons[1]
    assert "participant_id" in reasons[2]
    assert "future" in reasons[3]
    single = api.client.post("/v1/events", json=chat("A", 14, ""), headers=api.headers)
    assert single.status_code == 400
    assert "text" in single.json()["info"]


def test_expired_forged_and_borrowed_chat_links_are_refused(api: Api) -> None:
    first, second = split_meeting(api)
    link = first["chatLink"]
    token = link.split("token=")[1]
    header = jwt.get_unverified_header(token)
    other, other_key = make_project(api.database, "other")
    forged = [
        link[:-3] + ("abc" if link[-3:] != "abc" else "abd"),  # signature changed
        link.replace(first["id"], second["id"]),  # another session's path
        link.split("?")[0]
        + "?token="
        + jwt.encode(  # signed with another project's secret
            {"sub": first["id"], "aud": CHAT_AUDIENCE, "exp": T0 + 10**6},
            other.secret,
            headers=header,
        ),
        link.split("?")[0]
        + "?token="
        + jwt.encode(  # a token for something else
            {"sub": first["id"], "exp": T0 + 10**6}, api.project.secret, headers=header
        ),
        link.split("?")[0] + "?token=not-a-jwt",
    ]
    for bad in forged:
        answer = follow(api, bad)
        assert answer.status_code == 401, (bad, answer.text)
        assert answer.json()["error"] == "authentication-error"
    assert follow(api, link).status_code == 200
    api.clock.set(api.clock() / MICROS + 3601)
    expired = follow(api, link)
    assert expired.status_code == 401
    assert "expired" in expired.json()["info"]
    # Another project's key finds no such session.
    borrowed = api.client.get(
        f"/v1/meeting-sessions/{first['id']}/chat.csv",
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert borrowed.status_code == 404


def test_roomlog_export_writes_what_the_api_serves(
    api: Api, database_url: str, tmp_path: Any
) -> None:
    bodies = history(7, rooms=2, meetings=10)
    api.clock.set(T0 + 50_000)
    post(api, bodies)
    served = api.client.get("/v1/meetings.csv", params={"room": "room-0"}, headers=api.headers)
    out = tmp_path / "sessions.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomlog",
            "export",
            "sessions",
            "--room",
            "room-0",
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
    attendance = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomlog",
            "export",
            "attendance",
            "--project",
            "default",
            "--timeframe-start",
            rfc3339((T0 + 1000) * MICROS),
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert attendance.returncode == 0, attendance.stderr
    exported = rows(attendance.stdout)
    later = [m for m in all_pages(api) if m["start_time"] >= T0 + 1000]
    assert {r["session_id"] for r in exported} == {m["id"] for m in later}
    assert len(exported) == sum(
        len({p["participant_id"] for p in m["participants"]}) for m in later
    )
    unknown = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomlog",
            "export",
            "sessions",
            "--project",
            "nope",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 1
    assert "no project 'nope'" in unknown.stderr
