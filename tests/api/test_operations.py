"""What operators read, in process: metrics after known traffic (counts, not times), the
request log and ids, the metrics token, readiness, retention and the idempotency window."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from roomlog.api.app import create_app
from roomlog.domain.events import MICROS
from roomlog.store.db import Database
from roomlog.store.retention import DAY, prune
from roomlog.store.writes import Settings
from tests.api.test_meetings import all_pages, deliver, expected, history
from tests.bodies import joined, left
from tests.fixtures import RULES, T0, Api, Clock, make_project

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient[Any], headers: dict[str, str] | None = None) -> Samples:
    answer = client.get("/metrics", headers=headers or {})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_follow_known_traffic(api: Api) -> None:
    before = scrape(api.client)
    one, two = joined("a", 0, "m"), joined("b", 1, "m")
    answer = api.client.post("/v1/events", json=[one, two, {"id": "z"}], headers=api.headers)
    assert answer.json()["accepted"] == 2
    assert api.client.post("/v1/events", json=one, headers=api.headers).json()["duplicates"] == 1
    snapshot = {"at": T0 + 5, "participants": [{"participant_id": "c"}]}
    assert api.client.put("/v1/rooms/s/presence", json=snapshot, headers=api.headers).is_success
    api.clock.set(T0 + 60)
    api.tick()
    after = scrape(api.client)
    native = {"source": "native"}
    assert grew(before, after, "roomlog_events_total", outcome="accepted", **native) == 3
    assert grew(before, after, "roomlog_events_total", outcome="duplicate", **native) == 1
    assert grew(before, after, "roomlog_events_total", outcome="rejected", **native) == 1
    assert grew(before, after, "roomlog_ingest_request_seconds_count", route="/v1/events") == 2
    put = "/v1/rooms/{room_name}/presence"
    assert grew(before, after, "roomlog_ingest_request_seconds_count", route=put) == 1
    ok = {"method": "POST", "route": "/v1/events", "status": "200"}
    assert grew(before, after, "roomlog_http_requests_total", **ok) == 2
    ongoing = api.client.get("/v1/meetings", params={"ongoing": "true"}, headers=api.headers)
    count = ongoing.json()["total_count"]
    assert count == 2  # "m" with two people, "s" with one for longer than 30 s
    assert value(after, "roomlog_sessions_ongoing", project="default") == count
    assert value(after, "roomlog_outbox_pending") == 0
    assert value(after, "roomlog_partitions_unheld") == 0


def test_a_rebuild_counts_the_events_it_reads(api: Api) -> None:
    bodies = [joined("a", 0), joined("b", 1), left("a", 100), left("b", 120)]
    assert api.client.post("/v1/events", json=bodies, headers=api.headers).is_success
    before = scrape(api.client)
    api.store.rebuild(api.project, api.clock())
    assert grew(before, scrape(api.client), "roomlog_rebuild_events_total") == len(bodies)


def test_each_request_is_logged_once_with_its_id(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roomlog.access")
    given = {**api.headers, "X-Request-Id": "trace-42"}
    listed = api.client.get("/v1/meetings", headers=given)
    assert listed.headers["x-request-id"] == "trace-42"
    missing = api.client.get("/v1/meetings/nothing", headers=api.headers)
    assert missing.status_code == 404
    assert missing.json()["request_id"] == missing.headers["x-request-id"] != "trace-42"
    odd = api.client.get("/v1/meetings", headers={**api.headers, "X-Request-Id": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc"  # not a short token: a new id instead
    lines = [r for r in caplog.records if r.name == "roomlog.access"]
    assert [line.fields["id"] for line in lines] == [  # type: ignore[attr-defined]
        "trace-42",
        missing.headers["x-request-id"],
        odd.headers["x-request-id"],
    ]
    first, second = lines[0].fields, lines[1].fields  # type: ignore[attr-defined]
    assert (first["method"], first["route"], first["status"]) == ("GET", "/v1/meetings", 200)
    assert (second["route"], second["status"], second["project"]) == (
        "/v1/meetings/{meeting}",
        404,
        "default",
    )
    assert first["bytes_out"] == len(listed.content)
    assert all(api.key not in r.getMessage() and api.key not in str(r.fields) for r in lines)  # type: ignore[attr-defined]


def test_the_metrics_token_is_required_when_set(database: Database) -> None:
    app = create_app(database, Settings(rules=RULES), tick=3600, metrics_token="t0ken")
    with TestClient(app) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"] == "authentication-error"
        assert "--metrics-token" in refused.json()["info"]
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert (
            "roomlog_apply_lag_seconds"
            in client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).text
        )


def test_ready_says_when_the_applier_stopped_renewing(api: Api) -> None:
    for _ in range(100):
        answer = api.client.get("/ready")
        if answer.status_code == 200:
            break
        time.sleep(0.05)
    assert answer.json() == {"status": "ready"}
    state = api.client.app.state
    state.applier.stop()
    state.workings.beat.value = time.time() - 8
    refused = api.client.get("/ready")
    assert refused.status_code == 503
    assert refused.json()["reason"].startswith("the applier has not renewed its partition leases")


# -- retention ------------------------------------------------------------------------------


def test_pruning_keeps_every_session_retention_keeps(api: Api) -> None:
    """Two histories 40 days apart, and one person who stays throughout: pruning at 30 days
    removes the old history's sessions only, each room from its last settled instant before
    the cutoff; a rebuild afterwards finds the same sessions; a dry run counts what goes."""
    old = history(3, rooms=3, meetings=20)
    recent = [{**b, "id": "r" + b["id"], "at": b["at"] + 40 * 86_400} for b in history(4, 3, 20)]
    stayer = [joined("stayer", 10, "room-0"), left("stayer", 40 * 86_400 + 500, "room-0")]
    deliver(api, old + stayer[:1], seed=3)
    api.clock.set(T0 + 40 * 86_400)
    deliver(api, recent + stayer[1:], seed=4)
    api.clock.set(api.clock() / MICROS + 3600)
    api.tick()
    bodies = old + recent + stayer
    before = all_pages(api)
    assert before == expected(bodies, api.clock())
    now = api.clock()
    counted = prune(api.store, now, 30 * DAY, dry_run=True)
    removed = prune(api.store, now, 30 * DAY)
    assert counted.rows == removed.rows
    assert removed.rows["events"] > 0 and removed.rows["sessions"] > 0 and removed.rooms > 0
    after = all_pages(api)
    cutoff = (now - 30 * DAY) / MICROS
    kept = [m for m in before if m["ongoing"] or m["start_time"] + m["duration"] >= cutoff]
    assert all(m in before for m in after)  # nothing kept was changed
    assert all(m in after for m in kept)  # nothing retention keeps was removed
    assert len(after) < len(before)
    stays = [m for m in after if any(p["participant_id"] == "stayer" for p in m["participants"])]
    assert stays and stays[0]["start_time"] < cutoff  # began before the cutoff, ended after
    api.store.rebuild(api.project, now)
    assert all_pages(api) == after
    assert prune(api.store, now, 30 * DAY).total == 0


def test_events_older_than_the_retention_are_refused(database: Database) -> None:
    _, key = make_project(database, "default")
    clock = Clock(T0 + 100 * 86_400)
    settings = Settings(rules=RULES, retention=30 * DAY)
    app = create_app(database, settings, clock=clock, tick=3600, wait="applied")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        stale = joined("a", 69 * 86_400)
        fresh = joined("b", 71 * 86_400)
        answer = client.post("/v1/events", json=[stale, fresh], headers=headers).json()
        assert answer["accepted"] == 1
        (refused,) = answer["rejected"]
        assert refused["index"] == 0
        assert "older than the server keeps anything (30 days" in refused["reason"]


def test_the_dashboard_and_the_docs_name_only_metrics_the_server_has(api: Api) -> None:
    page = api.client.get("/metrics").text
    exposed = set(re.findall(r"^# TYPE (\w+) ", page, re.MULTILINE))
    docs = Path(__file__).resolve().parents[2] / "docs"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    documented = (docs / "OPERATIONS.md").read_text()
    named = set(re.findall(r"\broomlog_\w+", queries) + re.findall(r"`(roomlog_\w+)`", documented))
    assert len(named) >= 12
    for name in named:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert name in exposed or base in exposed, f"{name} is not on /metrics"
