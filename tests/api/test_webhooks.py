"""Webhooks out: Daily's API to manage them (tests/workers/test_delivery.py delivers them).
Real HTTP to a loopback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.store.db import Database
from roomlog.store.writes import Settings
from roomlog.workers.delivery import Deliverer, DeliverySettings
from tests.fixtures import RULES, T0, Api, Clock, make_project
from tests.receiver import Receiver, running, verified

SETTINGS = DeliverySettings(retry_base=60)


class Hooked(Api):
    deliverer: Deliverer

    def deliver(self) -> int:
        return self.deliverer.run_once()

    def create(self, url: str, **fields: Any) -> httpx.Response:
        return self.client.post("/v1/webhooks", json={"url": url, **fields}, headers=self.headers)

    def post(self, *bodies: dict[str, Any]) -> None:
        answer = self.client.post("/v1/events", json=list(bodies), headers=self.headers)
        assert answer.status_code == 200, answer.text

    def webhook(self, uuid: str) -> Any:
        (found,) = self.client.get(f"/v1/webhooks/{uuid}", headers=self.headers).json()
        return found


@pytest.fixture
def hooked(database: Database) -> Iterator[Hooked]:
    clock = Clock(T0)
    project, key = make_project(database, "default")
    app = create_app(
        database, Settings(rules=RULES), clock=clock, tick=3600, deliver=False, wait="applied"
    )
    with TestClient(app) as client:
        api = Hooked(client, database, clock, project, key)
        api.deliverer = Deliverer(database, threading.Event(), SETTINGS, clock=clock)
        yield api


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running()


def test_a_webhook_is_created_only_for_an_endpoint_that_answers_200(
    hooked: Hooked, receiver: Receiver
) -> None:
    receiver.status = 500
    refused = hooked.create(receiver.url)
    assert refused.status_code == 400
    assert "answered 500" in refused.json()["info"]
    assert hooked.client.get("/v1/webhooks", headers=hooked.headers).json() == []
    receiver.status = 200
    made = hooked.create(receiver.url, eventTypes=["meeting.started"], retryType="exponential")
    assert made.status_code == 200, made.text
    hook = made.json()
    assert (hook["state"], hook["retryType"], hook["eventTypes"]) == (
        "ACTIVE",
        "exponential",
        ["meeting.started"],
    )
    (check,) = receiver.received[-1:]
    assert check.json == {"test": "test"}
    assert verified(hook["hmac"], check)
    assert hooked.client.get("/v1/webhooks", headers=hooked.headers).json() == [hook]
    assert hooked.webhook(hook["uuid"]) == hook
    bad = hooked.create(receiver.url, eventTypes=["no.such-event"])
    assert bad.status_code == 400


def test_another_projects_webhook_is_not_found(hooked: Hooked, receiver: Receiver) -> None:
    hook = hooked.create(receiver.url).json()
    _, other = make_project(hooked.database, "other")
    headers = {"Authorization": f"Bearer {other}"}
    assert hooked.client.get(f"/v1/webhooks/{hook['uuid']}", headers=headers).status_code == 404
    assert hooked.client.delete(f"/v1/webhooks/{hook['uuid']}", headers=headers).status_code == 404
    gone = hooked.client.delete(f"/v1/webhooks/{hook['uuid']}", headers=hooked.headers)
    assert gone.json() == {"deleted": True, "uuid": hook["uuid"]}
    assert hooked.client.get("/v1/webhooks", headers=hooked.headers).json() == []


def test_webhook_bodies_are_validated(hooked: Hooked, receiver: Receiver) -> None:
    for body in (
        {},
        {"url": 3},
        {"url": receiver.url, "retryType": "never"},
        {"url": receiver.url, "hmac": "not base64!"},
        {"url": "ftp://x"},
        {"url": receiver.url, "unknown": 1},
    ):
        answer = hooked.client.post("/v1/webhooks", json=body, headers=hooked.headers)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) >= {"error", "info"}
    assert hooked.client.get("/v1/webhooks", headers=hooked.headers).json() == []
