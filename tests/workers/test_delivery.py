"""Webhook delivery: signed as Daily signs, stable ids, both retry policies, and an outbox
that survives a crash. Real HTTP to a loopback receiver."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from roomlog.store.db import migrate, open_database
from roomlog.store.schema import deliveries, outbox
from roomlog.workers.delivery import Deliverer
from tests.api.test_webhooks import SETTINGS, Hooked, hooked, receiver
from tests.bodies import joined, left
from tests.fixtures import T0, make_project
from tests.receiver import Receiver, verified
from tests.servers import Server

__all__ = ["hooked", "receiver"]


def test_meeting_started_waits_for_the_30_seconds_and_every_delivery_is_signed(
    hooked: Hooked, receiver: Receiver
) -> None:
    hook = hooked.create(receiver.url).json()
    first = joined("a", 0, user="ann")
    hooked.clock.set(T0 + 5)
    hooked.post(first)
    hooked.tick()
    hooked.deliver()
    assert receiver.types() == ["participant.joined"]
    hooked.clock.set(T0 + 29.9)
    hooked.tick()
    hooked.deliver()
    assert receiver.types() == ["participant.joined"]
    hooked.clock.set(T0 + 31)
    hooked.tick()
    hooked.deliver()
    assert receiver.types() == ["participant.joined", "meeting.started"]
    (meeting,) = hooked.client.get("/v1/meetings", headers=hooked.headers).json()["data"]
    started = receiver.events()[-1].json
    assert started["payload"] == {"start_ts": T0, "meeting_id": meeting["id"], "room": "r"}
    assert started["version"] == "1.0.0"
    later = [joined("b", 40), left("a", 100), left("b", 130.5)]
    hooked.clock.set(T0 + 200)
    hooked.post(*later)
    hooked.tick()
    hooked.deliver()
    kinds = receiver.types()
    assert sorted(kinds[2:]) == [
        "meeting.ended",
        "participant.joined",
        "participant.left",
        "participant.left",
    ]
    ended = next(r.json for r in receiver.events() if r.json["type"] == "meeting.ended")
    assert ended["payload"]["end_ts"] == T0 + 130.5
    leaves = {
        r.json["payload"]["session_id"]: r.json["payload"]
        for r in receiver.events()
        if r.json["type"] == "participant.left"
    }
    assert (leaves["a"]["joined_at"], leaves["a"]["duration"]) == (T0, 100)
    assert leaves["b"]["duration"] == 90.5
    assert all(verified(hook["hmac"], r) for r in receiver.events())
    # The same events again, and a rebuild: nothing new to send.
    hooked.post(first, *later)
    hooked.store.rebuild(hooked.project, hooked.clock())
    assert hooked.deliver() == 0
    ids = [r.json["id"] for r in receiver.events()]
    assert len(set(ids)) == len(ids) == 6


def _fail_until_reactivated(hooked: Hooked, receiver: Receiver) -> dict[str, Any]:
    hook: dict[str, Any] = hooked.create(receiver.url, eventTypes=["participant.joined"]).json()
    receiver.status = 503
    hooked.post(joined("a", 0))
    return hook


def test_circuit_breaker_fails_the_webhook_after_three_failures_until_updated(
    hooked: Hooked, receiver: Receiver
) -> None:
    hook = _fail_until_reactivated(hooked, receiver)
    for seconds in (0, 60, 60 + 120):
        hooked.clock.set(T0 + seconds)
        assert hooked.deliver() == 1
    assert (hooked.webhook(hook["uuid"])["state"], hooked.webhook(hook["uuid"])["failedCount"]) == (
        "FAILED",
        3,
    )
    hooked.post(joined("b", 1))
    hooked.clock.set(T0 + 3600)
    assert hooked.deliver() == 0
    log = hooked.client.get(f"/v1/webhooks/{hook['uuid']}/deliveries", headers=hooked.headers)
    assert [d["status_code"] for d in log.json()["data"]] == [503, 503, 503]
    assert [d["attempt"] for d in log.json()["data"]] == [3, 2, 1]
    receiver.status = 200
    again = hooked.client.post(f"/v1/webhooks/{hook['uuid']}", json={}, headers=hooked.headers)
    assert again.json()["state"] == "ACTIVE"
    assert hooked.deliver() == 2
    assert [r.json["payload"]["session_id"] for r in receiver.events()[-2:]] in (
        ["a", "b"],
        ["b", "a"],
    )
    assert hooked.webhook(hook["uuid"])["failedCount"] == 0


def test_exponential_retries_five_times_backing_off_then_gives_up(
    hooked: Hooked, receiver: Receiver
) -> None:
    hook = hooked.create(
        receiver.url, retryType="exponential", eventTypes=["participant.joined"]
    ).json()
    receiver.status = 500
    hooked.post(joined("a", 0))
    assert hooked.deliver() == 1
    at = 0
    for delay in (60, 120, 240, 480, 900):
        hooked.clock.set(T0 + at + delay - 1)
        assert hooked.deliver() == 0
        at += delay
        hooked.clock.set(T0 + at)
        assert hooked.deliver() == 1
    hooked.clock.set(T0 + 86_400)
    assert hooked.deliver() == 0
    assert len(receiver.events()) == 6
    assert hooked.webhook(hook["uuid"])["state"] == "ACTIVE"


def test_queued_deliveries_survive_a_crash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roomlog.db'}"
    database = open_database(url)
    migrate(database)
    _, key = make_project(database, "default")
    database.dispose()
    headers = {"Authorization": f"Bearer {key}"}
    options = ["--webhook-retry-base", "1"]
    receiver = Receiver()
    port = receiver.port
    server = Server(url, tmp_path / "server.log", options)
    try:
        made = httpx.post(
            f"{server.url}/v1/webhooks",
            json={
                "url": receiver.url,
                "retryType": "exponential",
                "eventTypes": ["participant.joined"],
            },
            headers=headers,
        )
        assert made.status_code == 200, made.text
        receiver.stop()  # the endpoint goes away: deliveries fail and wait in the outbox
        now = time.time()
        bodies = [
            {
                "id": f"e{n}",
                "type": "participant.joined",
                "room": "r",
                "participant_id": f"p{n}",
                "at": now - 60,
            }
            for n in range(5)
        ]
        assert (
            httpx.post(f"{server.url}/v1/events", json=bodies, headers=headers).json()["accepted"]
            == 5
        )
        log = f"{server.url}/v1/webhooks/{made.json()['uuid']}/deliveries"
        for _ in range(100):
            if httpx.get(log, headers=headers).json()["total_count"] >= 5:
                break
            time.sleep(0.05)
        server.kill()
        receiver = Receiver(port)
        server = Server(url, tmp_path / "server.log", options)
        for _ in range(300):
            if len({r.json["id"] for r in receiver.events()}) == 5:
                break
            time.sleep(0.05)
        assert sorted(r.json["payload"]["session_id"] for r in receiver.events()) == [
            f"p{n}" for n in range(5)
        ]
    finally:
        server.stop()
        receiver.stop()


def test_a_stopping_deliverer_hands_back_what_it_could_not_send(
    hooked: Hooked, receiver: Receiver
) -> None:
    """Sends still under way when the server stops are cut short after a grace period, and
    their events are due again at once, with no attempt counted, for another server."""
    hooked.create(receiver.url, eventTypes=["participant.joined"])
    receiver.delay = 30.0
    hooked.post(joined("a", 0))
    deliverer = Deliverer(hooked.database, threading.Event(), SETTINGS, clock=hooked.clock)
    deliverer.start()
    for _ in range(200):
        if receiver.types() == ["participant.joined"]:
            break
        time.sleep(0.05)
    assert receiver.types() == ["participant.joined"]  # sent, and waiting for the answer
    deliverer.stop()
    with hooked.database.engine.connect() as connection:
        (row,) = connection.execute(
            select(outbox.c.status, outbox.c.attempts, outbox.c.next_attempt_at)
        ).all()
        logged = connection.execute(select(func.count()).select_from(deliveries)).scalar_one()
    assert tuple(row) == ("pending", 0, hooked.clock())
    assert logged == 0
