"""VideoSDK's v2 routes: `/v2/sessions` and `/v2/rooms`, against `roomlog sessionize`, with
answers validated against schemas written from VideoSDK's API reference."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
from jsonschema import Draft202012Validator

from roomlog.domain.batch import sessionize
from roomlog.domain.events import rfc3339
from roomlog.domain.sessions import MeetingSession
from roomlog.ingest.native import parse_event
from roomlog.views.videosdk import participants
from tests.api.test_meetings import history
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api, make_project

SCHEMAS = json.loads((Path(__file__).parent / "schemas" / "videosdk_v2.json").read_text())


def conforms(name: str, body: Any) -> Any:
    """`body`, after checking it against VideoSDK's shape `name`."""
    schema = {"$defs": SCHEMAS["$defs"], **SCHEMAS[name]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    return body


def token(api: Api, **claims: Any) -> dict[str, str]:
    body = {"apikey": api.project.public_id, "permissions": ["allow_join"], **claims}
    body.setdefault("exp", int(time.time()) + 600)
    return {"Authorization": jwt.encode(body, api.project.secret, algorithm="HS256")}


def crawler(api: Api, **claims: Any) -> dict[str, str]:
    return token(api, version=2, roles=["crawler"], **claims)


def posted(api: Api, bodies: list[dict[str, Any]]) -> list[MeetingSession]:
    """Post `bodies` with the clock after them; the sessions `sessionize` computes of them."""
    api.clock.set(max(float(b["at"]) for b in bodies) + 120)
    answer = api.client.post("/v1/events", json=bodies, headers=api.headers)
    assert answer.status_code == 200, answer.text
    api.tick()
    events = [parse_event(json.dumps(b)) for b in bodies]
    return sessionize(events, api.clock(), RULES, tenant=api.project.name)


def v2_pages(api: Api, headers: dict[str, str], path: str, **params: Any) -> list[Any]:
    found: list[Any] = []
    page = 1
    while True:
        answer = api.client.get(path, params={**params, "page": page}, headers=headers)
        assert answer.status_code == 200, answer.text
        body = conforms("rooms" if path.startswith("/v2/rooms") else "sessions", answer.json())
        found += body["data"]
        if page >= body["pageInfo"]["lastPage"]:
            return found
        page += 1


def summary(session: MeetingSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "roomId": session.room,
        "start": rfc3339(session.start),
        "end": None if session.end is None else rfc3339(session.end),
        "participants": msgspec.to_builtins(participants(session.participants)),
        "status": "ongoing" if session.end is None else "ended",
    }


def without_links(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "links"} for s in sessions]


@pytest.mark.parametrize("seed", [3, 4])
def test_sessions_list_every_room_newest_first_as_sessionize_computes(api: Api, seed: int) -> None:
    sessions = posted(api, history(seed))
    assert any(s.end is None for s in sessions) or any(s.end is not None for s in sessions)
    listed = v2_pages(api, crawler(api), "/v2/sessions/", perPage=7)
    assert without_links(listed) == [summary(s) for s in sessions]
    for room in sorted({s.room for s in sessions}):
        one_room = v2_pages(api, api.headers, "/v2/sessions", roomId=room, perPage=3)
        assert without_links(one_room) == [summary(s) for s in sessions if s.room == room]
        assert v2_pages(api, api.headers, "/v2/sessions", customRoomId=room) == one_room
    first = listed[0]
    base = str(api.client.base_url).rstrip("/")
    assert first["links"] == {
        "get_room": f"{base}/v2/rooms/{first['roomId']}",
        "get_session": f"{base}/v2/sessions/{first['id']}",
    }


def test_one_session_and_its_participants(api: Api) -> None:
    bodies = [
        joined("a", 0, user="ana"),
        joined("b1", 20, user="ben"),
        left("b1", 60),
        joined("b2", 70, user="ben"),
        joined("c", 75),
        left("c", 95),
    ]
    [session] = posted(api, bodies)
    headers = crawler(api)
    one = api.client.get(f"/v2/sessions/{session.id}", headers=headers)
    assert one.status_code == 200, one.text
    body = conforms("session", one.json())
    assert {k: v for k, v in body.items() if k not in ("links", "activeDuration", "chatLink")} == (
        summary(session)
    )
    # Two or more present from 20 s to 60 s and from 70 s to now (T0 + 215 s).
    assert body["activeDuration"] == 40 + 145
    assert body["chatLink"] is None
    everyone = [p["participantId"] for p in body["participants"]]
    assert everyone == ["a", "b1", "b2", "c"]

    pages = [
        conforms(
            "participants",
            api.client.get(
                f"/v2/sessions/{session.id}/participants",
                params={"page": page, "perPage": 3},
                headers=headers,
            ).json(),
        )
        for page in (1, 2, 3)
    ]
    assert [p["pageInfo"] for p in pages] == [
        {"currentPage": n, "perPage": 3, "lastPage": 2, "total": 4} for n in (1, 2, 3)
    ]
    assert [p["participantId"] for page in pages for p in page["data"]["participants"]] == everyone
    assert pages[2]["data"]["participants"] == []
    assert pages[0]["data"]["id"] == session.id
    assert pages[0]["data"]["roomId"] == "r"

    active = conforms(
        "active",
        api.client.get(f"/v2/sessions/{session.id}/participants/active", headers=headers).json(),
    )
    assert active["pageInfo"] == {"currentPage": 1, "perPage": 20, "lastPage": 1, "total": 2}
    [entry] = active["data"]
    assert entry["_id"] == session.id
    assert entry["apiKey"] == api.project.public_id
    assert entry["status"] == "ongoing"
    assert [p["participantId"] for p in entry["participants"]] == ["a", "b2"]
    assert entry["links"]["get_all_participants"].endswith(
        f"/v2/sessions/{session.id}/participants"
    )


def test_an_ended_session_has_no_active_participants(api: Api) -> None:
    [session] = posted(api, [joined("a", 0), joined("b", 5), left("a", 50), left("b", 60)])
    assert session.end is not None
    active = api.client.get(
        f"/v2/sessions/{session.id}/participants/active", headers=crawler(api)
    ).json()
    conforms("active", active)
    assert active["pageInfo"]["total"] == 0
    assert active["data"][0]["status"] == "ended"
    assert active["data"][0]["participants"] == []


def test_rooms_as_roomlog_knows_them(api: Api) -> None:
    bodies = [joined("a", 0, room=f"room-{n:02}") for n in range(5)]
    bodies += [left("a", 100 + n, room=f"room-{n:02}") for n in range(5)]
    posted(api, bodies)
    rooms = v2_pages(api, crawler(api), "/v2/rooms", perPage=2)
    assert [r["roomId"] for r in rooms] == [f"room-{n:02}" for n in range(5)]
    first = rooms[0]
    assert first["createdAt"] == rfc3339(int(T0 * 1_000_000))
    assert first["updatedAt"] == rfc3339(int((T0 + 100) * 1_000_000))
    assert first["customRoomId"] is None
    assert first["disabled"] is False
    one = api.client.get("/v2/rooms/room-03", headers=crawler(api))
    assert conforms("room", one.json()) == rooms[3]
    missing = api.client.get("/v2/rooms/nowhere", headers=crawler(api))
    assert missing.status_code == 404
    assert missing.json()["error"] == "not-found"


def test_a_token_scoped_to_a_room_sees_only_that_room(api: Api) -> None:
    bodies = [joined("a", 0, room="mine"), joined("b", 1, room="mine")]
    bodies += [joined("c", 0, room="theirs"), joined("d", 1, room="theirs")]
    sessions = posted(api, bodies)
    mine = next(s for s in sessions if s.room == "mine")
    theirs = next(s for s in sessions if s.room == "theirs")
    scoped = crawler(api, roomId="mine", participantId="a")
    listed = v2_pages(api, scoped, "/v2/sessions")
    assert [s["id"] for s in listed] == [mine.id]
    assert api.client.get(f"/v2/sessions/{mine.id}", headers=scoped).status_code == 200
    for path in (
        f"/v2/sessions/{theirs.id}",
        f"/v2/sessions/{theirs.id}/participants",
        f"/v2/sessions/{theirs.id}/participants/active",
        "/v2/rooms/theirs",
    ):
        answer = api.client.get(path, headers=scoped)
        assert answer.status_code == 404, path
    other_room = api.client.get("/v2/sessions", params={"roomId": "theirs"}, headers=scoped)
    assert other_room.status_code == 401
    assert "scoped to room 'mine'" in other_room.json()["info"]
    assert [r["roomId"] for r in v2_pages(api, scoped, "/v2/rooms")] == ["mine"]
    # The v1 routes know no scope: they refuse the token rather than show every room.
    v1 = api.client.get("/v1/meeting-sessions", headers=scoped)
    assert v1.status_code == 401
    assert "/v2" in v1.json()["info"]


@pytest.mark.parametrize(
    ("claims", "info"),
    [
        ({"roomId": "r"}, '`roomId` claim needs `"version": 2`'),
        ({"version": 2, "roles": ["rtc"]}, "give it the `crawler` role"),
        ({"version": 2, "roles": "crawler"}, "`roles` is not a list of strings"),
        ({"version": 2, "roomId": 7}, "`roomId` is not a string"),
    ],
)
def test_tokens_videosdk_refuses_are_refused(api: Api, claims: dict[str, Any], info: str) -> None:
    answer = api.client.get("/v2/sessions", headers=token(api, **claims))
    assert answer.status_code == 401
    assert info in answer.json()["info"]


def test_another_projects_sessions_are_not_found(api: Api) -> None:
    [session] = posted(api, [joined("a", 0), joined("b", 1)])
    _, other_key = make_project(api.database, "other")
    other = {"Authorization": f"Bearer {other_key}"}
    assert api.client.get(f"/v2/sessions/{session.id}", headers=other).status_code == 404
    assert api.client.get("/v2/sessions", headers=other).json()["data"] == []
    assert api.client.get("/v2/rooms", headers=other).json()["data"] == []


@pytest.mark.parametrize("path", ["/v2/sessions", "/v2/rooms"])
def test_pages_beyond_the_last_are_empty_and_page_sizes_are_bounded(api: Api, path: str) -> None:
    posted(api, [joined("a", 0), joined("b", 1)])
    beyond = api.client.get(path, params={"page": 9}, headers=api.headers).json()
    assert beyond["data"] == []
    assert beyond["pageInfo"] == {"currentPage": 9, "perPage": 20, "lastPage": 1, "total": 1}
    for size in (0, 101):
        bad = api.client.get(path, params={"perPage": size}, headers=api.headers)
        assert bad.status_code == 400
        assert bad.json()["info"].startswith("perPage:")
    assert api.client.get(path, params={"page": 0}, headers=api.headers).status_code == 400
