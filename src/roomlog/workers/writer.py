"""Group commit: one thread per process writes what concurrent requests submitted, together.

A request hands its events to the writer and waits; the writer takes everything waiting (up
to a bound), stores it in one transaction, and answers every request once it has committed.
Under load many requests share one commit (one fsync in SQLite); alone, a request still gets
its own. The same thread applies the passage of time (`Store.tick`) every `tick` seconds, so a
process has a single writer and SQLite never sees two of them from one process. The thread
runs all its transactions on one database connection it holds (`Store.holding`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

from roomlog.domain.events import MICROS
from roomlog.store.store import Store
from roomlog.store.writes import IngestResult, Submission

log = logging.getLogger("roomlog.writer")

MAX_GROUP_EVENTS: Final = 20_000

Waiting = tuple[Submission, asyncio.Future[IngestResult], asyncio.AbstractEventLoop]
Answer = tuple[asyncio.Future[IngestResult], IngestResult | BaseException]


def _micros() -> int:
    return time.time_ns() // 1000


def _answer(answers: list[Answer]) -> None:
    for future, outcome in answers:
        if future.done():  # its request was cancelled (the client went away)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class Writer:
    def __init__(
        self,
        store: Store,
        tick: float = 0.25,
        clock: Callable[[], int] = _micros,
        stale_after: int = 0,
    ) -> None:
        self.store = store
        self.tick = tick
        self.clock = clock
        # µs without an event or a snapshot after which a presence is closed; 0: never.
        self.stale_after = stale_after
        self._next_sweep = 0.0
        self._queue: queue.SimpleQueue[Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="roomlog-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def submit(self, submission: Submission) -> IngestResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put((submission, future, loop))
        return await future

    def _run(self) -> None:
        with self.store.holding():
            self._serve()

    def _serve(self) -> None:
        next_tick = time.monotonic()
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = None
                if self._stopping:
                    return
            if first is not None:
                self._write(self._drain(first))
            elif self._stopping:
                return
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + self.tick

    def _drain(self, first: Waiting) -> list[Waiting]:
        group, size = [first], len(first[0].events)
        while size < MAX_GROUP_EVENTS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._stopping = True
                break
            group.append(item)
            size += len(item[0].events)
        return group

    def _write(self, group: list[Waiting]) -> None:
        try:
            results: list[IngestResult | BaseException] = list(
                self.store.ingest([s for s, _, _ in group], self.clock())
            )
        except Exception as exc:  # one request's failure must not fail the others
            if len(group) == 1:
                log.exception("storing events failed")
                results = [exc]
            else:
                for item in group:
                    self._write([item])
                return
        # One wake-up per event loop for the whole group, not one per request.
        answers: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
        for (_, future, loop), outcome in zip(group, results, strict=True):
            answers.setdefault(loop, []).append((future, outcome))
        for loop, due in answers.items():
            loop.call_soon_threadsafe(_answer, due)

    def _tick(self) -> None:
        try:
            for _ in range(50):  # bounded, so ingest never waits long behind a backlog
                if self.store.tick(self.clock()) == 0:
                    break
        except Exception:
            log.exception("applying the passage of time failed; retrying at the next tick")
        if self.stale_after and time.monotonic() >= self._next_sweep:
            # A tenth of the timeout between sweeps (at most a minute): a stale presence is
            # closed within 10% of the timeout after it went stale.
            self._next_sweep = time.monotonic() + min(60.0, self.stale_after / MICROS / 10)
            try:
                self.store.close_stale(self.clock(), self.stale_after)
            except Exception:
                log.exception("closing stale presences failed; retrying at the next sweep")
