"""Hostile and careless input on every way in: a precise 4xx (or the item listed as rejected)
that says what to do, the rest of a batch kept, never a 500 and never a stall for others."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from roomlog.store.schema import chat_messages, events
from roomlog.workers import targets
from tests.api.test_presence_and_videosdk import token
from tests.bodies import joined, left
from tests.fixtures import T0, Api, make_project

NUL = "\x00"
# Each test runs with writes answered once applied, and once logged (the server's default,
# where the appliers apply behind the answer): the answers must be the same.
_wait = {"mode": "applied"}


@pytest.fixture(autouse=True, params=["applied", "logged"])
def wait_mode(request: pytest.FixtureRequest) -> str:
    _wait["mode"] = request.param
    return str(request.param)


def post(
    api: Api, body: Any, headers: dict[str, str] | None = None, wait: str | None = None
) -> Any:
    """`wait`: "applied" where the test then reads what the events changed."""
    url = f"/v1/events?wait={wait or _wait['mode']}"
    return api.client.post(url, json=body, headers=headers or api.headers)


def raw(api: Api, content: bytes, kind: str = "application/json") -> Any:
    return api.client.post(
        f"/v1/events?wait={_wait['mode']}",
        content=content,
        headers={**api.headers, "Content-Type": kind},
    )


def stored_ids(api: Api) -> set[str]:
    with api.database.engine.connect() as connection:
        return {row[0] for row in connection.execute(select(events.c.id))}


def presence(api: Api, room_path: str) -> Any:
    return api.client.get(f"/v1/rooms/{room_path}/presence", headers=api.headers)


@pytest.mark.parametrize("field", ["id", "room", "participant_id", "user_id"])
def test_nul_in_an_identifier_rejects_that_item_and_keeps_the_rest(api: Api, field: str) -> None:
    bad = {**joined("a", 0, user="ann"), "user_id": "u-1"}
    bad[field] = f"x{NUL}y"
    good = joined("b", 1)
    answer = post(api, [bad, good])
    assert answer.status_code == 200
    report = answer.json()
    assert report["accepted"] == 1
    assert report["rejected"] == [
        {"index": 0, "reason": f"`{field}` contains U+0000 (NUL), which roomlog does not store"}
    ]
    assert stored_ids(api) == {good["id"]}
    # Alone, the same item is the request's 400, however often it is sent again.
    for _ in range(3):
        alone = post(api, bad)
        assert alone.status_code == 400
        assert alone.json()["error"] == "invalid-request-error"
        assert f"`{field}` contains U+0000" in alone.json()["info"]
    assert stored_ids(api) == {good["id"]}


def test_nul_in_free_text_is_replaced_and_the_item_kept(api: Api) -> None:
    event = {**joined("a", 0), "user_name": f"Ann{NUL}B"}
    chat = {
        "type": "chat.message",
        "room": "r",
        "participant_id": "a",
        "text": f"hi{NUL}there",
        "at": T0 + 1,
    }
    answer = post(api, [event, chat])
    assert answer.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    with api.database.engine.connect() as connection:
        assert connection.execute(select(events.c.user_name)).scalar_one() == "Ann\ufffdB"
        assert connection.execute(select(chat_messages.c.text)).scalar_one() == "hi\ufffdthere"


def test_nul_in_a_snapshot_participant_is_refused(api: Api) -> None:
    snapshot = {
        "id": "snap-1",
        "type": "room.snapshot",
        "room": "r",
        "at": T0,
        "participants": [{"participant_id": f"a{NUL}"}],
    }
    answer = post(api, snapshot)
    assert answer.status_code == 400
    assert "`participants[0].participant_id` contains U+0000" in answer.json()["info"]
    put = api.client.put(
        "/v1/rooms/r/presence",
        json={"participants": [{"participant_id": f"a{NUL}"}]},
        headers=api.headers,
    )
    assert put.status_code == 400
    assert "participant_id` contains U+0000" in put.json()["info"]
    assert stored_ids(api) == set()


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v1/meetings?room=a%00b", "query string contains U+0000"),
        ("/v1/rooms/a%00b/presence", "path contains U+0000"),
        ("/v1/meetings?room=%ff", "not UTF-8"),
        ("/v1/attendance?timeframe_start=%00", "query string contains U+0000"),
    ],
)
def test_nul_and_bad_utf8_in_paths_and_queries_are_400s(api: Api, path: str, needle: str) -> None:
    answer = api.client.get(path, headers=api.headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid-request-error"
    assert needle in answer.json()["info"]


def test_invalid_utf8_is_a_400_alone_and_a_rejected_line_in_ndjson(api: Api) -> None:
    good = [joined("a", 0), joined("b", 1), left("a", 30)]
    bad = json.dumps(joined("c", 2)).encode().replace(b'"c"', b'"c\xff"')
    alone = raw(api, bad)
    assert alone.status_code == 400
    assert "not UTF-8" in alone.json()["info"]
    lines = [json.dumps(e).encode() for e in good]
    answer = raw(api, b"\n".join([*lines[:2], bad, lines[2]]), "application/x-ndjson")
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 3
    assert [r["index"] for r in answer.json()["rejected"]] == [2]
    assert "not UTF-8" in answer.json()["rejected"][0]["reason"]
    assert stored_ids(api) == {e["id"] for e in good}


@pytest.mark.parametrize(
    "deep", [b"[" * 100_000, b'{"x":' * 50_000 + b"1" + b"}" * 50_000], ids=["array", "object"]
)
def test_deep_nesting_is_a_400_alone_and_a_rejected_line_in_ndjson(api: Api, deep: bytes) -> None:
    alone = raw(api, deep)
    assert alone.status_code == 400
    assert "nested too deeply" in alone.json()["info"] or "not valid JSON" in alone.json()["info"]
    good = joined("a", 0)
    answer = raw(api, json.dumps(good).encode() + b"\n" + deep, "application/x-ndjson")
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    assert [r["index"] for r in answer.json()["rejected"]] == [1]


def test_a_room_whose_name_holds_a_slash_is_reachable_on_every_room_route(api: Api) -> None:
    both = [joined("a", 0, room="team/a"), joined("b", 1, room="team")]
    assert post(api, both, wait="applied").status_code == 200
    for path in ("team%2Fa", "team/a"):
        answer = presence(api, path)
        assert answer.status_code == 200, answer.text
        assert [p["id"] for p in answer.json()["data"]] == ["a"]
    put = api.client.put(
        "/v1/rooms/team%2Fa/presence",
        json={"participants": [{"participant_id": "c"}], "at": T0 + 5},
        headers=api.headers,
    )
    assert put.status_code == 200, put.text
    assert [p["id"] for p in presence(api, "team%2Fa").json()["data"]] == ["c"]
    # The room "team" is another room, untouched.
    assert [p["id"] for p in presence(api, "team").json()["data"]] == ["b"]
    # A name holding a literal percent sign is reachable too.
    assert post(api, joined("d", 2, room="50%off"), wait="applied").status_code == 200
    assert [p["id"] for p in presence(api, "50%25off").json()["data"]] == ["d"]


def test_room_names_are_trimmed_and_never_blank(api: Api) -> None:
    both = [joined("a", 0, room="standup "), joined("b", 1, room=" standup")]
    answer = post(api, both, wait="applied")
    assert answer.json()["accepted"] == 2
    assert sorted(p["id"] for p in presence(api, "standup").json()["data"]) == ["a", "b"]
    blank = post(api, [joined("c", 2, room="   "), joined("d", 3)])
    assert blank.json()["rejected"] == [{"index": 0, "reason": "`room` is blank: name the room"}]
    assert presence(api, "%20%20%20").status_code == 404


def test_an_ndjson_line_may_start_with_a_byte_order_mark(api: Api) -> None:
    first = b"\xef\xbb\xbf" + json.dumps(joined("a", 0)).encode()
    body = first + b"\n" + json.dumps(joined("b", 1)).encode()
    answer = raw(api, body, "application/x-ndjson")
    assert answer.json() == {"accepted": 2, "duplicates": 0, "rejected": []}


def test_errors_a_new_user_can_act_on(api: Api) -> None:
    millis = post(api, {**joined("a", 0), "at": (T0 + 5) * 1000})
    assert millis.status_code == 400
    assert "looks like milliseconds" in millis.json()["info"]
    assert "divide it by 1,000" in millis.json()["info"]
    ndjson = "\n".join(json.dumps(joined(p, 0)) for p in ("a", "b"))
    as_json = raw(api, ndjson.encode())
    assert as_json.status_code == 400
    assert "application/x-ndjson" in as_json.json()["info"]
    assert raw(api, ndjson.encode(), "application/ndjson").json()["accepted"] == 2
    ahead = post(api, {**joined("c", 0), "at": api.clock.now / 1e6 + 3600})
    assert ahead.status_code == 400
    assert "60 s ahead of its clock" in ahead.json()["info"]


def test_a_flood_of_refused_items_leaves_another_project_ingesting(api: Api) -> None:
    _, other_key = make_project(api.database, "other")
    other = {"Authorization": f"Bearer {other_key}"}
    bad = {**joined("a", 0), "id": f"a{NUL}b"}
    accepted = 0
    for n in range(40):
        assert post(api, bad).status_code == 400
        answer = post(api, joined(f"p{n}", n), headers=other)
        assert answer.status_code == 200
        accepted += answer.json()["accepted"]
    assert accepted == 40


def test_a_jwt_sent_as_bearer_to_videosdk_routes_says_to_drop_bearer(api: Api) -> None:
    jwt_token = token(api)
    answer = api.client.get(
        "/v1/meeting-sessions", headers={"Authorization": f"Bearer {jwt_token}"}
    )
    assert answer.status_code == 401
    assert "no `Bearer`" in answer.json()["info"]
    headers = {"Authorization": jwt_token}
    assert api.client.get("/v1/meeting-sessions", headers=headers).status_code == 200


def test_csv_answers_name_their_charset_once_and_openapi_says_text_csv(api: Api) -> None:
    post(api, [joined("a", 0), left("a", 60)])
    answer = api.client.get("/v1/meetings.csv", headers=api.headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    schema = api.client.get("/schema/openapi.json").json()
    for path in ("/v1/meetings.csv", "/v1/attendance.csv"):
        assert "text/csv" in schema["paths"][path]["get"]["responses"]["200"]["content"]
    assert schema["paths"]["/health"]["get"]["security"] == []


def test_a_failed_webhook_check_does_not_echo_hosts_or_ports(api: Api) -> None:
    answer = api.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=api.headers
    )
    assert answer.status_code == 400
    info = answer.json()["info"]
    assert "connection failed" in info
    assert "127.0.0.1" not in info
    assert ":9" not in info


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.1.2.3/"],
)
def test_deny_private_refuses_inner_addresses(
    api: Api, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv(targets.ENV, "1")
    answer = api.client.post("/v1/webhooks", json={"url": url}, headers=api.headers)
    assert answer.status_code == 400
    assert "public addresses only (--webhook-deny-private)" in answer.json()["info"]


def test_the_public_resolver_drops_private_answers() -> None:
    async def resolve(host: str) -> object:
        return await targets.PublicResolver().resolve(host, 80)

    with pytest.raises(OSError, match="no public address"):
        asyncio.run(resolve("localhost"))
    assert targets.is_private("192.168.1.1")
    assert targets.is_private("::ffff:127.0.0.1")
    assert targets.is_private("169.254.169.254")
    assert not targets.is_private("93.184.216.34")


@pytest.mark.parametrize("field", ["url", "hmac", "basicAuth"])
def test_nul_in_a_webhook_field_is_a_400_naming_it(api: Api, field: str) -> None:
    body = {"url": "http://127.0.0.1:9/hook", field: "a\x00b"}
    answer = api.client.post("/v1/webhooks", json=body, headers=api.headers)
    assert answer.status_code == 400
    assert answer.json()["info"] == f"{field}: contains U+0000 (NUL)"
