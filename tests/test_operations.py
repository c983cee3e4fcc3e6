"""Running it in production, on real `roomlog serve` processes: metrics summed over two workers
and their applier processes, request log lines, `--public-url` with a Twilio signature,
readiness with the database refusing connections, and SIGTERM under load."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from roomlog.store.db import migrate, open_database
from roomlog.store.providers import set_credentials
from roomlog.store.schema import events, partitions
from tests.api.test_providers import TWILIO_TOKEN, rfc3339, twilio_request
from tests.fixtures import POSTGRES_URL, make_project
from tests.servers import Server


def scrape(
    url: str, token: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` as {(sample name, sorted labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def now_events(prefix: str, count: int, room: str = "r") -> list[dict[str, Any]]:
    at = int(time.time()) - 5
    return [
        {
            "id": f"{prefix}-{n}",
            "type": "participant.joined",
            "room": f"{room}{n % 7}",
            "participant_id": f"p{n}",
            "at": at,
        }
        for n in range(count)
    ]


def test_metrics_count_every_worker_and_the_log_says_each_request(
    database_url: str, tmp_path: Path
) -> None:
    """Two workers, each with its applier process: the counts after known traffic are the
    same whichever worker answers the scrape, and the request log has a line per request,
    as JSON, without the key."""
    database = open_database(database_url)
    migrate(database)
    project, key = make_project(database, "default")
    with database.engine.begin() as connection:
        set_credentials(connection, project.id, "twilio", {"auth_token": TWILIO_TOKEN})
    database.dispose()
    public = "https://hooks.example.com/roomlog"
    log = tmp_path / "server.log"
    server = Server(
        database_url,
        log,
        [
            "--workers",
            "2",
            "--log-format",
            "json",
            "--metrics-token",
            "s3cret",
            "--public-url",
            public,
        ],
    )
    try:
        headers = {"Authorization": f"Bearer {key}"}
        body = now_events("m", 30)
        for n in range(0, 30, 3):  # ten requests, spread over both workers
            answer = httpx.post(f"{server.url}/v1/events", json=body[n : n + 3], headers=headers)
            assert answer.json()["accepted"] == 3
        again = httpx.post(
            f"{server.url}/v1/events", json=[*body[:4], {"id": "x"}], headers=headers
        )
        assert again.json()["duplicates"] == 4
        # Twilio signs the URL it called: the public one, not the one the server listens on.
        params = {
            "StatusCallbackEvent": "participant-connected",
            "RoomName": "tw",
            "RoomSid": "RMtw",
            "ParticipantSid": "PAone",
            "ParticipantIdentity": "one",
            "SequenceNumber": "1",
            "Timestamp": rfc3339(int(time.time()) - 5),
        }
        for base, status in ((server.url, 401), (public, 200)):
            path, content, signed = twilio_request(base, params)
            answer = httpx.post(server.url + path, content=content, headers=signed)
            assert answer.status_code == status, answer.text
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        _balanced(server.url, "s3cret")
        for _ in range(4):  # whichever worker answers, the sums are the same
            samples = scrape(server.url, "s3cret")
            assert value(samples, "roomlog_events_total", outcome="accepted", source="native") == 30
            assert value(samples, "roomlog_events_total", outcome="duplicate", source="native") == 4
            assert value(samples, "roomlog_events_total", outcome="rejected", source="native") == 1
            assert value(samples, "roomlog_events_total", outcome="accepted", source="twilio") == 1
            assert value(samples, "roomlog_ingest_request_seconds_count", route="/v1/events") == 11
            posted = value(
                samples,
                "roomlog_http_requests_total",
                method="POST",
                route="/v1/events",
                status="200",
            )
            assert posted == 11
            assert value(samples, "roomlog_partitions_held") == 16  # two appliers, 16 in all
            assert value(samples, "roomlog_partitions_unheld") == 0
            assert value(samples, "roomlog_outbox_pending") == 0
            assert all(
                value(samples, "roomlog_apply_lag_seconds", partition=str(p)) == 0
                for p in range(16)
            )
            assert value(samples, "roomlog_events_applied_total") == 31
    finally:
        server.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "roomlog.access"]
    posts = [r for r in requests if r["route"] == "/v1/events"]
    assert len(posts) == 11
    assert {r["project"] for r in posts} == {"default"}
    assert all(r["status"] == 200 and r["bytes_in"] > 0 and r["duration_ms"] > 0 for r in posts)
    assert all(r["bytes_out"] > 0 and r["id"] for r in posts)  # answered ahead of Litestar
    assert len({r["id"] for r in requests}) == len(requests)
    assert key not in log.read_text() and "s3cret" not in log.read_text()


def _balanced(url: str, token: str) -> None:
    """Wait until the two workers' appliers hold every partition between them (they share
    them out within a few lease renewals)."""
    for _ in range(150):
        samples = scrape(url, token)
        if value(samples, "roomlog_partitions_held") == 16:
            return
        time.sleep(0.1)
    raise AssertionError("the appliers did not come to hold the 16 partitions")


def test_sigterm_under_load_loses_nothing_acknowledged(database_url: str, tmp_path: Path) -> None:
    """Clients post without pause; the server gets SIGTERM. It exits 0, every acknowledged
    event is stored, no request whose events were stored saw its connection fail, and the
    partitions are free at once for another server."""
    database = open_database(database_url)
    migrate(database)
    _, key = make_project(database, "default")
    server = Server(database_url, tmp_path / "server.log", ["--wait", "logged"])
    acknowledged: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def client(name: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                body = now_events(f"{name}-{n}", 20)
                n += 1
                try:
                    answer = http.post(f"{server.url}/v1/events", json=body, headers=headers)
                except httpx.TransportError:
                    failed.extend(e["id"] for e in body)
                    if server.process.poll() is not None:
                        return
                    continue
                assert answer.status_code == 200, answer.text
                acknowledged.extend(e["id"] for e in body)

    clients = [threading.Thread(target=client, args=(f"c{i}",)) for i in range(4)]
    for thread in clients:
        thread.start()
    try:
        while len(acknowledged) < 2_000:
            time.sleep(0.05)
        server.process.terminate()
        code = server.process.wait(timeout=40)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        server.stop()
    assert code == 0
    with database.engine.connect() as connection:
        stored = {row[0] for row in connection.execute(select(events.c.id))}
        held = connection.execute(
            select(func.count()).where(partitions.c.holder.is_not(None))
        ).scalar_one()
    database.dispose()
    assert set(acknowledged) <= stored
    assert not set(failed) & stored
    assert held == 0


def test_ready_says_when_the_database_refuses_connections(
    postgres_url: str, tmp_path: Path
) -> None:
    name = f"roomlog_ready_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    server = None
    try:
        server = Server(url, tmp_path / "server.log")
        assert _ready(server.url, 200)["status"] == "ready"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        refused = _ready(server.url, 503)
        assert refused["status"] == "unavailable"
        assert refused["reason"].startswith("the database does not answer")
        assert httpx.get(f"{server.url}/health").status_code == 200  # alive all the same
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert _ready(server.url, 200)["status"] == "ready"
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _ready(url: str, status: int) -> dict[str, str]:
    """`/ready`'s answer once it has `status` (within 15 s: the applier renews every second,
    and its lease lapses after 5)."""
    for _ in range(150):
        answer = httpx.get(f"{url}/ready", timeout=10)
        if answer.status_code == status:
            found: dict[str, str] = answer.json()
            return found
        time.sleep(0.1)
    raise AssertionError(f"/ready stayed {answer.status_code}: {answer.text}")


def test_the_default_placement_exits_cleanly_on_sigterm_when_idle(tmp_path: Path) -> None:
    """With the applier in its own process (the default), an idle server exits 0 on SIGTERM,
    its applier process with it."""
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    server = Server(url, tmp_path / "server.log")
    assert _ready(server.url, 200)["status"] == "ready"
    server.process.terminate()
    assert server.process.wait(timeout=30) == 0
    server.stop()
    assert "gave up partitions" in (tmp_path / "server.log").read_text()
