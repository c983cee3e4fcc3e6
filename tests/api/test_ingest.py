"""POST /v1/events: what is stored, what is refused, and that nothing is half-written."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from roomlog.api.events import MAX_BODY, MAX_EVENTS
from roomlog.domain.events import MICROS, micros_from_rfc3339
from roomlog.store.schema import events, pending
from roomlog.workers import applier as applier_module
from tests.bodies import joined, left
from tests.fixtures import T0, Api
from tests.helpers import error_of


def stored(api: Api) -> int:
    with api.database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


def post(api: Api, body: Any, **kwargs: Any) -> Any:
    return api.client.post("/v1/events", json=body, headers=api.headers, **kwargs)


def test_one_event_an_array_and_ndjson_are_all_stored(api: Api) -> None:
    assert post(api, joined("a", 0)).json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert post(api, [joined("b", 1), left("b", 20)]).json()["accepted"] == 2
    lines = "\n".join(json.dumps(e) for e in [joined("c", 2), left("c", 30)]) + "\n\n"
    answer = api.client.post(
        "/v1/events",
        content=lines,
        headers={**api.headers, "Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 2
    assert stored(api) == 5


def test_a_repeated_id_is_a_duplicate_and_changes_nothing(api: Api) -> None:
    event = joined("a", 0)
    post(api, event)
    before = api.client.get("/v1/meetings", headers=api.headers).json()
    answer = post(api, [event, event])
    assert answer.json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert stored(api) == 1
    assert api.client.get("/v1/meetings", headers=api.headers).json() == before


def test_an_id_reused_for_other_content_is_rejected(api: Api) -> None:
    event = joined("a", 0)
    post(api, [event, left("a", 50)])
    other = {**event, "at": T0 + 5}
    answer = post(api, [other, joined("b", 1)])
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 1
    assert answer.json()["rejected"] == [
        {"index": 0, "reason": f"id {event['id']!r} is already used by a different event"}
    ]
    # The same within one request: the first one wins, the second is refused.
    fresh = joined("c", 2)
    answer = post(api, [fresh, {**fresh, "room": "elsewhere"}])
    assert answer.json()["accepted"] == 1
    assert [r["index"] for r in answer.json()["rejected"]] == [1]
    # Every occurrence is compared with what the log holds, not with the one before it.
    answer = post(api, [other, event])
    assert answer.json()["duplicates"] == 1
    assert [r["index"] for r in answer.json()["rejected"]] == [0]


def test_valid_items_of_a_batch_are_kept_and_the_others_listed(api: Api) -> None:
    body = [joined("a", 0), {"id": "x", "type": "participant.waved"}, "nope", left("a", 40)]
    answer = post(api, body)
    assert answer.status_code == 200
    result = answer.json()
    assert result["accepted"] == 2
    assert [r["index"] for r in result["rejected"]] == [1, 2]
    assert "participant.waved" in result["rejected"][0]["reason"]
    assert stored(api) == 2


def test_ndjson_rejections_name_the_line(api: Api) -> None:
    lines = f"{json.dumps(joined('a', 0))}\n{{broken\n{json.dumps(left('a', 60))}\n"
    answer = api.client.post(
        "/v1/events",
        content=lines,
        headers={**api.headers, "Content-Type": "application/x-ndjson"},
    )
    assert answer.json()["accepted"] == 2
    assert [r["index"] for r in answer.json()["rejected"]] == [1]


def test_malformed_json_is_a_400_and_stores_nothing(api: Api) -> None:
    answer = api.client.post(
        "/v1/events",
        content=b'[{"id": "a", ',
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid-request-error"
    assert answer.json()["info"].startswith("the body is not valid JSON")
    assert stored(api) == 0


def test_a_single_invalid_event_is_a_400_naming_the_field(api: Api) -> None:
    answer = post(api, {**joined("a", 0), "at": "yesterday"})
    assert answer.status_code == 400
    assert error_of(answer) == {
        "error": "invalid-request-error",
        "info": "'yesterday' is not an RFC 3339 timestamp - at `$.at`",
    }
    answer = post(api, {**joined("a", 0), "room": 7})
    assert answer.status_code == 400
    assert "$.room" in answer.json()["info"]
    assert stored(api) == 0


def test_a_batch_with_nothing_valid_is_a_400_with_the_list(api: Api) -> None:
    answer = post(api, [{"id": "x"}, 3])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid-request-error"
    assert [r["index"] for r in answer.json()["rejected"]] == [0, 1]


def test_events_too_far_in_the_future_are_rejected(api: Api) -> None:
    now = api.clock() // 1_000_000
    soon, too_late = joined("a", 0), joined("b", 0)
    soon["at"], too_late["at"] = now + 30, now + 3600
    answer = post(api, [soon, too_late])
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 1
    assert rejected["reason"].startswith("`at` is further in the future than the server allows")
    # It says by how much, and what the server's clock reads.
    assert "60 s ahead of its clock, which reads 2023-11-14T23:13:20Z" in rejected["reason"]


def test_an_oversized_body_is_a_413_and_stores_nothing(api: Api) -> None:
    padding = "x" * 1000
    body = [{**joined("a", i), "user_name": padding} for i in range(MAX_BODY // 1000 + 10)]
    answer = post(api, body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "request-too-large"
    assert stored(api) == 0


def test_too_many_events_in_one_request_is_a_413(api: Api) -> None:
    body = [joined(f"p{i}", i % 100) for i in range(MAX_EVENTS + 1)]
    answer = post(api, body)
    assert answer.status_code == 413
    assert str(MAX_EVENTS) in answer.json()["info"]
    assert stored(api) == 0


def test_a_chunked_body_gets_the_same_answers_as_one_of_declared_length(api: Api) -> None:
    """A body of declared length is answered ahead of Litestar's request handling; a chunked
    one by the declared route. Both must answer alike, errors included."""
    ndjson = {"Content-Type": "application/x-ndjson"}
    cases: list[tuple[bytes, dict[str, str]]] = [
        (json.dumps(joined("a", 0)).encode(), {}),
        (json.dumps([left("a", 40), {"type": "participant.waved"}, joined("b", 1)]).encode(), {}),
        (f"{json.dumps(joined('c', 2))}\n{{broken\n".encode(), ndjson),
        (b'{"id": "x", "type": ', {}),
        (json.dumps([{"id": "y"}]).encode(), {}),
        (json.dumps({**joined("d", 3), "at": T0 + 10**6}).encode(), {}),
    ]
    answers = []
    for chunked in (False, True):
        for n, (text, headers) in enumerate(cases):
            # The second pass posts the same events under other ids, so both store them.
            body = text.replace(b'"id": "', f'"id": "{int(chunked)}{n}-'.encode())
            content: Any = iter([body[:5], body[5:]]) if chunked else body
            answer = api.client.post(
                "/v1/events", content=content, headers={**api.headers, **headers}
            )
            seen = answer.json() if answer.status_code == 200 else error_of(answer)
            answers.append((answer.status_code, seen))
    assert answers[: len(cases)] == answers[len(cases) :]
    assert [status for status, _ in answers[: len(cases)]] == [200, 200, 200, 400, 400, 400]
    for key, bad in (("not-a-key", 401), ("", 400)):
        headers = {"Authorization": f"Bearer {key}".strip()}
        for content in (b"{}", iter([b"{}"])):
            answer = api.client.post("/v1/events", content=content, headers=headers)
            assert answer.status_code == bad
            assert set(error_of(answer)) == {"error", "info"}
    assert stored(api) == 2 * 4


def test_a_body_of_declared_length_is_answered_ahead_of_litestar(api: Api) -> None:
    body = json.dumps(joined("a", 0)).encode()
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "headers": [
            (b"authorization", f"Bearer {api.key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api.client.app(scope, receive, send))
    assert "litestar_app" not in scope  # Litestar marks every scope it handles
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert stored(api) == 1


def _refuse(api: Api, table: str) -> None:
    """Make the database itself refuse every new row of `table`, as a failing disk or a broken
    operator change would: a real fault inside a write."""
    with api.database.engine.begin() as connection:
        if api.database.sqlite:
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{table} refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                f" $$ BEGIN RAISE EXCEPTION '{table} refused'; END $$"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def _accept(api: Api, table: str) -> None:
    with api.database.engine.begin() as connection:
        connection.exec_driver_sql(
            "DROP TRIGGER refuse" if api.database.sqlite else f"DROP TRIGGER refuse ON {table}"
        )


def test_events_acknowledged_while_sessions_cannot_be_written_are_applied_later(
    api: Api,
) -> None:
    """Log first: a fault in applying (here, the sessions table refusing rows) does not
    touch what was acknowledged; the applier tries again, and once the fault is gone the
    sessions reflect every event."""
    _refuse(api, "sessions")
    body = [joined("a", 0), joined("b", 1)]
    answer = api.client.post("/v1/events?wait=logged", json=body, headers=api.headers)
    assert answer.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert stored(api) == 2
    assert api.client.get("/v1/meetings", headers=api.headers).json()["total_count"] == 0
    _accept(api, "sessions")
    for _ in range(200):
        found = api.client.get("/v1/meetings", headers=api.headers).json()
        if found["data"]:
            break
        time.sleep(0.05)
    assert found["total_count"] == 1
    assert {p["participant_id"] for p in found["data"][0]["participants"]} == {"a", "b"}


def test_a_failing_database_is_a_500_in_dailys_shape_and_keeps_nothing(api: Api) -> None:
    """Both ways in (ahead of Litestar, and Litestar's route for a chunked body) answer a fault
    of the database alike, and the failed transaction leaves no event behind: posting the
    same events once the fault is gone stores them, rather than calling them duplicates.
    (The handing over to the applier is the append's last write.)"""
    first = [joined("a", 0), joined("b", 1)]  # two people: a session row at once
    second = [joined("c", 0, room="s"), joined("d", 1, room="s")]
    _refuse(api, "pending")
    answers = []
    for body in (first, second):
        text = json.dumps(body).encode()
        for content in (text, iter([text[:7], text[7:]])):
            answer = api.client.post("/v1/events?wait=logged", content=content, headers=api.headers)
            answers.append((answer.status_code, error_of(answer)))
    assert answers == 4 * [
        (500, {"error": "server-error", "info": "an unexpected error; it has been logged"})
    ]
    assert stored(api) == 0
    _accept(api, "pending")
    for body in (first, second):
        assert post(api, body).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert stored(api) == 4
    meetings = api.client.get("/v1/meetings", headers=api.headers).json()
    assert sorted(m["room"] for m in meetings["data"]) == ["r", "s"]


def test_without_waiting_the_sessions_catch_up_and_the_header_says_when(api: Api) -> None:
    """The answer comes once the events are logged; the sessions follow, and
    `Roomlog-Applied-Through` passes the instant of the write once they do."""
    api.clock.set(T0 + 100)
    posted_at = api.clock()
    body = [joined("a", 0), joined("b", 1)]
    answer = api.client.post("/v1/events?wait=logged", json=body, headers=api.headers)
    assert answer.json()["accepted"] == 2
    for _ in range(200):
        read = api.client.get("/v1/meetings", headers=api.headers)
        if read.json()["total_count"]:
            break
        time.sleep(0.05)
    assert read.json()["total_count"] == 1
    for _ in range(200):
        read = api.client.get("/v1/meetings", headers=api.headers)
        if micros_from_rfc3339(read.headers["roomlog-applied-through"]) >= posted_at // 1000 * 1000:
            break
        time.sleep(0.05)
    assert micros_from_rfc3339(read.headers["roomlog-applied-through"]) >= posted_at // 1000 * 1000
    refused = api.client.post("/v1/events?wait=soon", json=body, headers=api.headers)
    assert refused.status_code == 400 and refused.json()["info"].startswith("wait:")


def test_a_request_of_only_duplicates_is_answered_when_applied_behind(api: Api) -> None:
    """With `wait=logged`, a request whose events are all already stored hands nothing to
    the appliers (and must not try to)."""
    first, second = joined("a", 0), joined("b", 1)
    url = "/v1/events?wait=logged"
    assert api.client.post(url, json=[first, second], headers=api.headers).json()["accepted"] == 2
    for body in (first, [first, second], [second, second]):
        answer = api.client.post(url, json=body, headers=api.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 0
        assert answer.json()["duplicates"] == (1 if isinstance(body, dict) else 2)
    with api.database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(pending)).scalar_one() <= 1


def test_a_few_fresh_events_are_applied_at_once_while_the_appliers_are_idle(api: Api) -> None:
    """With nothing waiting for the appliers, a small group of events none of which is late
    is applied in its append's transaction (one fsync, not two): its session shows although
    no applier runs. A late one is left to the applier of its partition."""
    api.client.app.state.applier.stop()  # it saw nothing waiting, and applies nothing now
    now = api.clock() / MICROS - T0
    fresh = [joined("a", now - 60, "fresh"), joined("b", now - 50, "fresh")]
    answer = api.client.post("/v1/events?wait=logged", json=fresh, headers=api.headers)
    assert answer.json()["accepted"] == 2
    listed = api.client.get("/v1/meetings", params={"room": "fresh"}, headers=api.headers)
    assert listed.json()["total_count"] == 1
    late = [joined("c", now - 3600, "late"), joined("d", now - 3599, "late")]
    answer = api.client.post("/v1/events?wait=logged", json=late, headers=api.headers)
    assert answer.json()["accepted"] == 2
    listed = api.client.get("/v1/meetings", params={"room": "late"}, headers=api.headers)
    assert listed.json()["total_count"] == 0  # waiting in `pending` for an applier


def test_events_applied_at_once_move_the_applied_through_header_at_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events the writer applies itself (a few fresh ones while the appliers are idle) tell the
    applier to look again: `Roomlog-Applied-Through` passes them without waiting for the
    applier's next poll (made a minute long here)."""
    monkeypatch.setattr(applier_module, "POLL", 60.0)
    time.sleep(0.2)  # the applier's current short wait ends; the next ones last a minute
    later = api.clock() // MICROS + 500  # past the applier's last look
    api.clock.set(later)
    posted_at = api.clock()
    body = [joined("a", later - T0 - 60, "quick"), joined("b", later - T0 - 50, "quick")]
    answer = api.client.post("/v1/events?wait=logged", json=body, headers=api.headers)
    assert answer.json()["accepted"] == 2
    for _ in range(200):
        read = api.client.get("/health")
        if micros_from_rfc3339(read.headers["roomlog-applied-through"]) >= posted_at // 1000 * 1000:
            break
        time.sleep(0.05)
    assert micros_from_rfc3339(read.headers["roomlog-applied-through"]) >= posted_at // 1000 * 1000
