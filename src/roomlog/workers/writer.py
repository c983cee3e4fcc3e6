"""Group commit: one thread per process writes what concurrent requests submitted, together.

A request hands its events to the writer and waits; the writer takes everything waiting (up
to a bound), appends it to the event log in one transaction, and answers every request once
it has committed. Under load many requests share one commit (one fsync in SQLite); alone, a
request still gets its own. The events are applied to their rooms behind the log by the
partitions' appliers (`roomlog.workers.applier`), which `wake` tells of new ones. Room ends
and snapshots (rare, answered with what they changed) and requests that wait for their
events to be applied are applied in the append's own transaction instead; the room locks
keep them in step with the appliers. So is a small group of events none of which is late
while the appliers have nothing waiting and no other writer thread is writing: single events
at a steady pace then cost one transaction, not two. Under a flood of them (both threads
busy) they go to the appliers instead, who apply many groups in one transaction, and a
group's commit does not wait for another tenant's sessions to be worked out.
The thread runs its transactions on one database connection it holds (`Store.holding`).

On PostgreSQL there are several such threads (`roomlog serve --writers`, default 2), each
with a connection of its own, taking groups from the same queue: while one group's
transaction runs in the database, the next one's does too, on another core. Groups left to
the appliers lock no room and need no turn (`Store.ingest`); PostgreSQL's unique index
settles two groups appending the same id, one of which finds it a duplicate. SQLite has one
writer at a time, and one thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

from roomlog import metrics
from roomlog.store.store import Store
from roomlog.store.writes import IngestResult, Submission

log = logging.getLogger("roomlog.writer")

MAX_GROUP_EVENTS: Final = 20_000
EAGER_AT_MOST: Final = 64  # events in a group applied at once when the appliers are idle

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
        clock: Callable[[], int] = _micros,
        wake: Callable[[], None] = lambda: None,
        idle: Callable[[], bool] = lambda: False,
        applied: Callable[[], None] = lambda: None,
        threads: int = 1,
    ) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake  # events appended for the appliers
        self.idle = idle
        self.applied = applied  # events applied here, in their append's transaction
        self._queue: queue.SimpleQueue[Waiting | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"roomlog-writer-{n}", daemon=True)
            for n in range(1 if store.database.sqlite else max(1, threads))
        ]
        self._stopping = False
        self._writing = 0  # threads writing a group now
        self._counting = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping = True
        for _ in self._threads:  # one for each thread, which ends on taking it
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    async def submit(self, submission: Submission) -> IngestResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put((submission, future, loop))
        return await future

    def _run(self) -> None:
        with self.store.holding():
            self._serve()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None:
                group = self._drain(first)
                with self._counting:
                    self._writing += 1
                try:
                    self._write(group)
                finally:
                    with self._counting:
                        self._writing -= 1
            if self._stopping or first is None:
                return

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
        inline = [w for w in group if _at_once(w[0])]
        if inline and len(inline) < len(group):
            self._write(inline)
            group, inline = [w for w in group if not _at_once(w[0])], []
        behind = not inline
        try:
            results: list[IngestResult | BaseException]
            if behind and self._eager(group):
                results, behind = self._applied_at_once(group)
            else:
                results = list(
                    self.store.ingest([s for s, _, _ in group], self.clock(), behind=behind)
                )
            if behind:
                self.wake()
            else:
                metrics.APPLIED.inc(sum(r.accepted for r in results if isinstance(r, IngestResult)))
                self.applied()
        except Exception as exc:  # one request's failure must not fail the others
            if len(group) == 1:
                log.exception("storing events failed")
                results = [exc]
            else:
                for item in group:
                    self._write([item])
                return
        self._answer(group, results)

    def _eager(self, group: list[Waiting]) -> bool:
        """Whether to apply a group in its append's transaction although nothing asks to: a
        few events, none late, while the appliers have nothing waiting and no other thread
        writes. One transaction (one fsync) instead of two, and the applier has nothing to
        do; a late event, whose room may have to be re-derived, is left to the applier of its
        partition, as is everything while another thread writes (the writer is busy: the
        appliers apply many groups at once)."""
        size = sum(len(w[0].events) for w in group)
        if size > EAGER_AT_MOST or self._writing > 1 or not self.idle():
            return False
        oldest = self.clock() - self.store.settings.late_window // 2
        return all(e.at >= oldest for w in group for _, e in w[0].events)

    def _applied_at_once(
        self, group: list[Waiting]
    ) -> tuple[list[IngestResult | BaseException], bool]:
        """The group applied in its append's transaction, or if that fails (a fault in the
        sessions, say), appended for the appliers after all; and whether it went behind."""
        submissions = [s for s, _, _ in group]
        try:
            return list(self.store.ingest(submissions, self.clock(), behind=False)), False
        except Exception:
            log.exception("applying events at once failed; leaving them to the appliers")
            return list(self.store.ingest(submissions, self.clock(), behind=True)), True

    def _answer(self, group: list[Waiting], results: list[IngestResult | BaseException]) -> None:
        # One wake-up per event loop for the whole group, not one per request.
        answers: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
        for (_, future, loop), outcome in zip(group, results, strict=True):
            answers.setdefault(loop, []).append((future, outcome))
        for loop, due in answers.items():
            loop.call_soon_threadsafe(_answer, due)


def _at_once(submission: Submission) -> bool:
    """Whether to apply `submission` in its append's transaction: room ends and snapshots
    (rare, answered with what they changed), and requests that wait to be applied (one
    transaction instead of two)."""
    return bool(
        submission.apply_now
        or submission.room_ends
        or submission.snapshots
        or submission.room_events
    )
