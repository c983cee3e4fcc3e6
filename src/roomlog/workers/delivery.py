"""Delivering webhook events from the outbox: at least once, signed as Daily signs them.

One thread per process claims due events (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
processes share the work), pushes back their next attempt by a lease so that a crash mid-send
means a resend, not a loss, posts them concurrently, and records each attempt.
A webhook's `retryType` decides what a failure does:
- `circuit-breaker`: the event is retried with backoff; after `trip_after` consecutive
  failures the webhook goes `FAILED` and nothing is sent to it until it is updated again;
- `exponential`: the event is retried up to `max_retries` times with backoff (doubling from
  `retry_base`, at most `max_backoff`), then given up; the webhook stays active.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiohttp
import msgspec
from sqlalchemy import Connection, and_, bindparam, select, update

from roomlog import metrics
from roomlog.domain.events import MICROS
from roomlog.ingest.daily import signature
from roomlog.store.db import Database
from roomlog.store.schema import deliveries, outbox, webhooks
from roomlog.workers import targets

log = logging.getLogger("roomlog.webhooks")

VERSION: Final = "1.0.0"
STOP_GRACE: Final = 2.0  # seconds a stopping server lets webhook sends under way finish
CIRCUIT_BREAKER: Final = "circuit-breaker"
EXPONENTIAL: Final = "exponential"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    retry_base: float = 60.0  # seconds before the first retry; doubled for each one after
    max_backoff: float = 900.0
    max_retries: int = 5
    trip_after: int = 3
    timeout: float = 10.0
    batch: int = 500
    connections: int = 64
    # A claimed event not recorded within this long (the process died) is sent again.
    lease: float = 60.0

    def backoff(self, attempts: int) -> int:
        """µs to wait after the `attempts`-th failed attempt."""
        delay = min(self.max_backoff, self.retry_base * 2 ** max(0, attempts - 1))
        return int(delay * MICROS)


class Claimed(NamedTuple):
    webhook_id: str
    event_id: str
    type: str
    payload: bytes
    attempts: int
    url: str
    hmac: str
    basic_auth: str | None
    retry_type: str


class Outcome(NamedTuple):
    item: Claimed
    at: int
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def envelope(kind: str, event_id: str, payload: bytes, sent_at: int) -> bytes:
    """Daily's webhook body around a stored payload."""
    head = msgspec.json.encode(
        {"version": VERSION, "type": kind, "id": event_id, "event_ts": sent_at / MICROS}
    )
    return head[:-1] + b',"payload":' + payload + b"}"


def signed_headers(
    secret: str, body: bytes, sent_at: int, basic_auth: str | None
) -> dict[str, str]:
    timestamp = str(sent_at // MICROS)
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": signature(secret, timestamp, body),
    }
    if basic_auth:
        headers["Authorization"] = "Basic " + base64.b64encode(basic_auth.encode()).decode()
    return headers


def _micros() -> int:
    return time.time_ns() // 1000


class Deliverer:
    def __init__(
        self,
        database: Database,
        wake: threading.Event,
        settings: DeliverySettings | None = None,
        clock: Callable[[], int] = _micros,
        idle: float = 0.5,
    ) -> None:
        self.database = database
        self.settings = settings or DeliverySettings()
        self.clock = clock
        self.idle = idle
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomlog-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._loop())

    def _client(self) -> aiohttp.ClientSession:
        # The timeouts are per connection attempt and per read, not per request: a request
        # waiting for one of the pool's connections has not timed out.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.timeout, sock_read=self.settings.timeout
        )
        connector = targets.connector(limit=self.settings.connections)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def _loop(self) -> None:
        async with self._client() as client:
            while not self._stopping.is_set():
                try:
                    if await self._round(client):
                        continue
                except Exception:
                    log.exception("delivering webhooks failed; trying again shortly")
                await asyncio.to_thread(self._wake.wait, self.idle)
                self._wake.clear()

    async def _round(self, client: aiohttp.ClientSession) -> int:
        """Send what is due now; how many attempts were made. When the server stops, the
        sends still under way after `STOP_GRACE` seconds are cut short and their events
        handed back (due at once, no attempt counted), for another server to send now."""
        claimed = self.claim()
        if not claimed:
            return 0
        sends = {asyncio.ensure_future(self._send(client, c)): c for c in claimed}
        waiting, cut_at = set(sends), None
        while waiting:
            _, waiting = await asyncio.wait(waiting, timeout=0.1)
            if self._stopping.is_set() and waiting:
                cut_at = cut_at or time.monotonic() + STOP_GRACE
                if time.monotonic() >= cut_at:
                    for task in waiting:
                        task.cancel()
                    break
        outcomes = [t.result() for t in sends if t.done() and not t.cancelled()]
        if outcomes:
            self.record(outcomes)
        if waiting:
            self.hand_back([sends[t] for t in waiting])
        return len(outcomes)

    def hand_back(self, claimed: list[Claimed]) -> None:
        """Make claimed events due now again, without counting an attempt."""
        with self.database.engine.begin() as connection:
            _reschedule(connection, [(c.webhook_id, c.event_id) for c in claimed], self.clock())
        log.info("handed back %d webhook event(s) not sent before stopping", len(claimed))

    def run_once(self) -> int:
        """One round outside the thread (for `roomlog` tools and tests); attempts made."""

        async def once() -> int:
            async with self._client() as client:
                return await self._round(client)

        return asyncio.run(once())

    async def _send(self, client: aiohttp.ClientSession, item: Claimed) -> Outcome:
        sent_at = self.clock()
        body = envelope(item.type, item.event_id, item.payload, sent_at)
        headers = signed_headers(item.hmac, body, sent_at, item.basic_auth)
        started = time.perf_counter()
        code: int | None = None
        try:
            async with client.post(item.url, data=body, headers=headers) as answer:
                await answer.read()
                code, error = answer.status, None
            if not 200 <= code < 300:
                error = f"the endpoint answered {code}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        elapsed = int((time.perf_counter() - started) * 1000)
        return Outcome(item, sent_at, code, error, elapsed)

    # -- the outbox -----------------------------------------------------------------------

    def claim(self) -> list[Claimed]:
        """Due events of active webhooks, leased to this process."""
        now = self.clock()
        query = (
            select(
                outbox.c.webhook_id,
                outbox.c.event_id,
                outbox.c.type,
                outbox.c.payload,
                outbox.c.attempts,
                webhooks.c.url,
                webhooks.c.hmac,
                webhooks.c.basic_auth,
                webhooks.c.retry_type,
            )
            .join(webhooks, webhooks.c.id == outbox.c.webhook_id)
            .where(
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
                webhooks.c.state == "ACTIVE",
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(self.settings.batch)
            .with_for_update(of=outbox, skip_locked=True)
        )
        with self.database.engine.begin() as connection:
            claimed = [Claimed(*row) for row in connection.execute(query)]
            if claimed:
                _reschedule(
                    connection,
                    [(c.webhook_id, c.event_id) for c in claimed],
                    now + int(self.settings.lease * MICROS),
                )
        return claimed

    def record(self, outcomes: list[Outcome]) -> None:
        settings = self.settings
        with self.database.engine.begin() as connection:
            connection.execute(
                deliveries.insert(),
                [
                    {
                        "webhook_id": o.item.webhook_id,
                        "event_id": o.item.event_id,
                        "type": o.item.type,
                        "attempt": o.item.attempts + 1,
                        "at": o.at,
                        "status_code": o.status_code,
                        "error": o.error,
                        "duration_ms": o.duration_ms,
                    }
                    for o in outcomes
                ],
            )
            hooks = {o.item.webhook_id for o in outcomes}
            state = {
                wid: [hook_state, failed]
                for wid, hook_state, failed in connection.execute(
                    select(webhooks.c.id, webhooks.c.state, webhooks.c.failed_count).where(
                        webhooks.c.id.in_(sorted(hooks))
                    )
                )
            }
            rows: list[dict[str, Any]] = []
            pushed: dict[str, int] = {}
            for o in sorted(outcomes, key=lambda o: o.at):
                item, attempts = o.item, o.item.attempts + 1
                row = {"w": item.webhook_id, "e": item.event_id, "att": attempts}
                current = state.get(item.webhook_id)
                if o.ok:
                    metrics.DELIVERIES.labels("delivered").inc()
                    rows.append({**row, "st": "delivered", "nx": o.at})
                    pushed[item.webhook_id] = o.at
                    if current is not None:
                        current[1] = 0
                    continue
                retry_at = o.at + settings.backoff(attempts)
                if item.retry_type == EXPONENTIAL and attempts > settings.max_retries:
                    log.warning(
                        "webhook %s: gave up on event %s after %d attempts (%s)",
                        item.webhook_id,
                        item.event_id,
                        attempts,
                        o.error,
                    )
                    metrics.DELIVERIES.labels("gave_up").inc()
                    rows.append({**row, "st": "failed", "nx": o.at})
                    continue
                metrics.DELIVERIES.labels("failed").inc()
                rows.append({**row, "st": "pending", "nx": retry_at})
                if item.retry_type == CIRCUIT_BREAKER and current is not None:
                    current[1] += 1
                    if current[1] >= settings.trip_after and current[0] == "ACTIVE":
                        current[0] = "FAILED"
                        log.warning(
                            "webhook %s FAILED after %d consecutive failures (%s);"
                            " update it to send again",
                            item.webhook_id,
                            current[1],
                            o.error,
                        )
            connection.execute(
                update(outbox)
                .where(
                    and_(outbox.c.webhook_id == bindparam("w"), outbox.c.event_id == bindparam("e"))
                )
                .values(
                    status=bindparam("st"),
                    attempts=bindparam("att"),
                    next_attempt_at=bindparam("nx"),
                ),
                rows,
            )
            for wid, (hook_state, failed) in state.items():
                values: dict[str, Any] = {"state": hook_state, "failed_count": failed}
                if wid in pushed:
                    values["last_moment_pushed"] = pushed[wid]
                connection.execute(update(webhooks).where(webhooks.c.id == wid).values(**values))


def _reschedule(connection: Connection, keys: list[tuple[str, str]], at: int) -> None:
    connection.execute(
        update(outbox)
        .where(and_(outbox.c.webhook_id == bindparam("w"), outbox.c.event_id == bindparam("e")))
        .values(next_attempt_at=at),
        [{"w": w, "e": e} for w, e in keys],
    )
