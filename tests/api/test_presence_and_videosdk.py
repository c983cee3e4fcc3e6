"""Presence, the VideoSDK-compatible routes, and who may call what."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from roomlog.store.projects import revoke_key
from tests.bodies import joined, left
from tests.fixtures import T0, Api, make_project
from tests.helpers import error_of


def meeting(api: Api) -> None:
    """Ana and Ben meet in `r` from T0; Ben drops at 60 and rejoins at 70; Chen visits `s`."""
    api.clock.set(T0 + 100)
    bodies = [
        joined("a", 0, user="ana"),
        joined("b1", 20, user="ben"),
        left("b1", 60),
        joined("b2", 70, user="ben"),
        joined("c", 90, room="s", user="chen"),
    ]
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).json()["accepted"] == 5


def test_presence_lists_everyone_in_the_rooms_now(api: Api) -> None:
    meeting(api)
    presence = api.client.get("/v1/presence", headers=api.headers).json()
    assert sorted(presence) == ["r", "s"]
    [session] = api.client.get("/v1/meetings", params={"room": "r"}, headers=api.headers).json()[
        "data"
    ]
    assert presence["r"] == [
        {
            "room": "r",
            "id": "a",
            "userId": "ana",
            "userName": "Ana",
            "mtgSessionId": session["id"],
            "joinTime": "2023-11-14T22:13:20.000Z",
            "duration": 100,
        },
        {
            "room": "r",
            "id": "b2",
            "userId": "ben",
            "userName": "Ben",
            "mtgSessionId": session["id"],
            "joinTime": "2023-11-14T22:14:30.000Z",
            "duration": 30,
        },
    ]
    # Chen has been alone for 10 s: present, but no session has begun yet.
    assert presence["s"][0]["mtgSessionId"] is None
    one = api.client.get("/v1/rooms/r/presence", headers=api.headers).json()
    assert one == {"total_count": 2, "data": presence["r"]}
    named = api.client.get(
        "/v1/rooms/r/presence", params={"userName": "Ben"}, headers=api.headers
    ).json()
    assert [p["id"] for p in named["data"]] == ["b2"]
    assert (
        api.client.get("/v1/rooms/r/presence", params={"limit": 1}, headers=api.headers).json()[
            "data"
        ]
        == presence["r"][:1]
    )


def test_presence_of_an_empty_and_an_unknown_room(api: Api) -> None:
    api.clock.set(T0 + 100)
    api.client.post("/v1/events", json=[joined("a", 0), left("a", 50)], headers=api.headers)
    assert api.client.get("/v1/rooms/r/presence", headers=api.headers).json() == {
        "total_count": 0,
        "data": [],
    }
    answer = api.client.get("/v1/rooms/nowhere/presence", headers=api.headers)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not-found"
    assert api.client.get("/v1/presence", headers=api.headers).json() == {}


def token(api: Api, **claims: Any) -> str:
    body = {"apikey": api.project.public_id, "permissions": ["allow_join"], **claims}
    body.setdefault("exp", int(time.time()) + 600)
    return jwt.encode(body, api.project.secret, algorithm="HS256")


def test_videosdk_sessions_with_a_jwt(api: Api) -> None:
    meeting(api)
    headers = {"Authorization": token(api)}
    listed = api.client.get("/v1/meeting-sessions", headers=headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["pageInfo"] == {"currentPage": 1, "perPage": 20, "lastPage": 1, "total": 1}
    [session] = body["data"]
    assert session["meetingId"] == "r"
    assert session["start"] == "2023-11-14T22:13:20.000Z"
    assert session["end"] is None
    assert session["chatLink"] is None
    # Two or more present: 20 s to 60 s, then 70 s to now (100 s).
    assert session["activeDuration"] == 70
    assert session["participants"] == [
        {
            "participantId": "a",
            "name": "Ana",
            "timelog": [{"start": "2023-11-14T22:13:20.000Z", "end": None}],
        },
        {
            "participantId": "b1",
            "name": "Ben",
            "timelog": [{"start": "2023-11-14T22:13:40.000Z", "end": "2023-11-14T22:14:20.000Z"}],
        },
        {
            "participantId": "b2",
            "name": "Ben",
            "timelog": [{"start": "2023-11-14T22:14:30.000Z", "end": None}],
        },
    ]
    one = api.client.get(f"/v1/meeting-sessions/{session['id']}", headers=headers).json()
    assert one == session
    people = api.client.get(
        f"/v1/meeting-sessions/{session['id']}/participants", headers=headers
    ).json()
    assert people["data"] == session["participants"]
    active = api.client.get(
        f"/v1/meeting-sessions/{session['id']}/participants/active",
        params={"perPage": 1, "page": 2},
        headers=headers,
    ).json()
    assert active["pageInfo"] == {"currentPage": 2, "perPage": 1, "lastPage": 2, "total": 2}
    assert [p["participantId"] for p in active["data"]] == ["b2"]
    # A bearer key works on these routes too, and meetingId filters by room.
    by_room = api.client.get(
        "/v1/meeting-sessions", params={"meetingId": "s"}, headers=api.headers
    ).json()
    assert by_room["data"] == []
    assert by_room["pageInfo"]["total"] == 0


def test_videosdk_pages(api: Api) -> None:
    api.clock.set(T0 + 10_000)
    bodies = []
    for n in range(5):
        bodies += [
            joined(f"a{n}", n * 1000),
            joined(f"b{n}", n * 1000 + 1),
            left(f"a{n}", n * 1000 + 50),
        ]
        bodies += [left(f"b{n}", n * 1000 + 60)]
    api.client.post("/v1/events", json=bodies, headers=api.headers)
    headers = {"Authorization": token(api)}
    pages = [
        api.client.get(
            "/v1/meeting-sessions", params={"page": page, "perPage": 2}, headers=headers
        ).json()
        for page in (1, 2, 3, 4)
    ]
    assert [p["pageInfo"]["lastPage"] for p in pages] == [3, 3, 3, 3]
    starts = [s["start"] for p in pages for s in p["data"]]
    assert len(starts) == 5
    assert starts == sorted(starts, reverse=True)
    assert pages[3]["data"] == []
    bad = api.client.get("/v1/meeting-sessions", params={"perPage": 0}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["info"].startswith("perPage:")


@pytest.mark.parametrize(
    ("claims", "secret", "info"),
    [
        ({"exp": 1}, None, "the token has expired"),
        (
            {},
            "a-secret-that-is-not-the-projects-own",
            "the token is not valid: Signature verification failed",
        ),
        ({"apikey": "pk_unknown"}, None, "the token's `apikey` names no project"),
        ({"permissions": "all"}, None, "the token's `permissions` is not a list"),
    ],
)
def test_bad_tokens_are_401(
    api: Api, claims: dict[str, Any], secret: str | None, info: str
) -> None:
    body = {"apikey": api.project.public_id, "permissions": ["allow_join"], "exp": 2**40, **claims}
    forged = jwt.encode(body, secret or api.project.secret, algorithm="HS256")
    answer = api.client.get("/v1/meeting-sessions", headers={"Authorization": forged})
    assert answer.status_code == 401
    assert error_of(answer) == {"error": "authentication-error", "info": info}


def test_a_token_without_exp_is_refused(api: Api) -> None:
    forged = jwt.encode({"apikey": api.project.public_id}, api.project.secret, algorithm="HS256")
    answer = api.client.get("/v1/meeting-sessions", headers={"Authorization": forged})
    assert answer.status_code == 401
    assert "exp" in answer.json()["info"]


ROUTES = [
    ("GET", "/v1/meetings"),
    ("GET", "/v1/meetings/x"),
    ("GET", "/v1/meetings/x/participants"),
    ("GET", "/v1/presence"),
    ("GET", "/v1/rooms/r/presence"),
    ("GET", "/v1/meeting-sessions"),
    ("GET", "/v1/meeting-sessions/x"),
    ("GET", "/v1/meeting-sessions/x/participants"),
    ("GET", "/v1/meeting-sessions/x/participants/active"),
    ("POST", "/v1/events"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_route_needs_a_valid_key(api: Api, method: str, url: str) -> None:
    def call(headers: dict[str, str]) -> Any:
        return api.client.request(method, url, headers=headers, json=joined("a", 0))

    missing = call({})
    assert missing.status_code == 400
    assert missing.json()["error"] == "authorization-header-error"
    wrong = call({"Authorization": "Bearer rl_0000_nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "authentication-error"


@pytest.mark.parametrize(("method", "url"), ROUTES[:5])
def test_daily_routes_want_the_bearer_scheme(api: Api, method: str, url: str) -> None:
    answer = api.client.request(method, url, headers={"Authorization": api.key})
    assert answer.status_code == 400
    assert answer.json()["error"] == "authorization-header-error"


def test_a_revoked_key_is_refused_and_told_apart_from_an_invalid_one(api: Api) -> None:
    _, key = make_project(api.database, "default")
    with api.database.engine.begin() as connection:
        revoke_key(connection, key)
    answer = api.client.get("/v1/meetings", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401
    assert "was revoked" in answer.json()["info"]
    assert "roomlog keys create" in answer.json()["info"]
    assert api.client.get("/v1/meetings", headers=api.headers).status_code == 200
    # The same key id with a wrong secret says nothing of the key's state.
    forged = key.rsplit("_", 1)[0] + "_wrong"
    invalid = api.client.get("/v1/meetings", headers={"Authorization": f"Bearer {forged}"})
    assert invalid.status_code == 401
    assert invalid.json()["info"] == "the API key is not valid"


def test_errors_keep_dailys_shape(api: Api) -> None:
    for answer in (
        api.client.get("/v1/nowhere", headers=api.headers),
        api.client.delete("/v1/meetings", headers=api.headers),
    ):
        assert answer.status_code in (404, 405)
        assert set(error_of(answer)) == {"error", "info"}


def test_the_openapi_document_is_served(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    assert "/v1/meetings" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    errors = schema["paths"]["/v1/meetings"]["get"]["responses"]["400"]
    assert "ErrorBody" in str(errors)
