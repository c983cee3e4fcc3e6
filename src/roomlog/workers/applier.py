"""The applier: one thread per `roomlog serve` process that applies the events of the room
partitions whose leases it holds, and the passage of time in their rooms.

It claims partitions (free or expired ones, up to a fair share), renews its leases every
`RENEW` seconds, and gives them up at once when it stops, so that another process takes them
without waiting for them to expire. Between claims it applies what is pending in each held
partition (woken by this process's writer, and looking every `POLL` seconds for what other
processes appended), and every `tick` seconds what time alone changed in their rooms.
After a short round of applying, the next waits until `GATHER` seconds have passed since
it began (`_gathered`), so that a trickle of events is applied several per room at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Final, Protocol

from roomlog import logs, metrics
from roomlog.domain.events import MICROS
from roomlog.store import leases
from roomlog.store.behind import apply_parts, apply_pending, partitions
from roomlog.store.db import open_database
from roomlog.store.store import Store
from roomlog.store.writes import Settings
from roomlog.workers import collector
from roomlog.workers.signals import Receiver, Sender

log = logging.getLogger("roomlog.applier")

LEASE: Final = 5.0  # seconds a lease lasts without renewal: a dead process's are taken after
RENEW: Final = 1.0
POLL: Final = 0.05
GATHER: Final = 0.25  # seconds from one short round of applying to the next, at the least
# Seconds a partition's turn in a round lasts at most (it ends after the transaction that
# passes it), so that a backlog in one partition does not starve the others: every held
# partition with events waiting gets a turn in every round, in order, and a round under a
# backlog in all 16 lasts about 16 turns.
TURN: Final = 0.05


def _wall() -> int:
    return time.time_ns() // 1000


class Beat(Protocol):
    """Where an applier says when it last claimed its leases: an object with a `value`
    (unix seconds), a `multiprocessing.Value` when it runs in a process of its own."""

    value: float


@dataclass
class Heartbeat:
    """A `Beat` for an applier in a thread of the server."""

    value: float = 0.0


class Waker(Protocol):
    """What wakes an applier: a `threading.Event`, or a `multiprocessing` one when the
    applier runs in a process of its own."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def holder_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Applier:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], int],
        tick: float = 0.25,
        stale_after: int = 0,
        lease: float = LEASE,
        applies: bool = True,
        wake: Waker | None = None,
        applied: Waker | None = None,
        beat: Beat | None = None,
        gather: float = GATHER,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tick = tick
        self.stale_after = stale_after
        self.lease = int(lease * MICROS)
        self.holder = holder_name()
        self.held: list[int] = []
        # When the oldest event not yet applied (anywhere) was received; None: all applied.
        self.oldest_pending: int | None = None
        self.checked_at = 0  # the clock when `oldest_pending` was last read
        # Without `applies`, it only watches what is pending (another process applies).
        self.applies = applies
        self._wake: Waker = wake if wake is not None else threading.Event()
        self.applied = applied  # set after applying anything (for a watching process)
        # Set to the time (unix s) of each successful claim, for readiness to read.
        self.beat = beat
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomlog-applier", daemon=True)
        self._next_sweep = 0.0
        self.gather = gather
        self._next_round = 0.0  # (monotonic) no round of applying begins before it
        self._monotonic: Callable[[], float] = time.monotonic
        self._pause: Callable[[float], bool] = self._stopping.wait  # False unless stopping
        self._keeper = collector.Keeper()
        # The threads that apply partitions side by side (`Settings.apply_threads`): on
        # SQLite one applies while another waits for the writer's lock or its commit, which
        # took a fifth of a lone applier's time under load (docs/PERFORMANCE.md).
        self.threads = store.settings.apply_threads
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if not self.applies:
            return
        try:
            with self.store.database.engine.begin() as connection:
                leases.release(connection, self.holder)
            log.info("gave up partitions %s for another server to take at once", self.held)
        except Exception:
            log.exception("giving up the partition leases failed; they expire by themselves")
        metrics.PARTITIONS_HELD.set(0)

    def _run(self) -> None:
        with self.store.holding():
            next_claim = next_tick = 0.0
            while not self._stopping.is_set():
                try:
                    if not self.applies:
                        self._look()
                    else:
                        if time.monotonic() >= next_claim:
                            self._claim()
                            next_claim = time.monotonic() + RENEW
                        if self._turn():
                            self._keeper.worked()
                        else:
                            self._keeper.idle()
                        if time.monotonic() >= next_tick:
                            self._time_passes()
                            next_tick = time.monotonic() + self.tick
                except Exception:
                    log.exception("applying events failed; trying again")
                    time.sleep(POLL)
                self._wake.wait(POLL)
                self._wake.clear()

    def _claim(self) -> None:
        # In turn with the writers: on SQLite, waiting for the lock file hands over at once,
        # where SQLite's own busy handler sleeps between tries.
        with self.store.turn, self.store.transactions.begin() as connection:
            partitions(self.store, connection)
            held = leases.claim(connection, self.holder, _wall(), self.lease)
        if held != self.held:
            log.info("applying partitions %s of %d", held, self.store.parts)
            metrics.PARTITIONS_HELD.set(len(held))
        self.held = held
        if self.beat is not None:
            self.beat.value = time.time()

    def _look(self) -> set[int]:
        """The partitions with events waiting, and when the oldest of them arrived."""
        with self.store.database.reader.connect() as connection:
            waiting = leases.waiting(connection)
        self.oldest_pending = min(waiting.values()) if waiting else None
        self.checked_at = self.clock()
        return set(waiting)

    def _turn(self) -> int:
        """One round of applying what is waiting in the held partitions, once it is time."""
        return self._round(self._gathered(self._look()))

    def _gathered(self, busy: set[int]) -> set[int]:
        """`busy`, or, if the last round of applying was short and began less than `gather`
        seconds ago, what is waiting once that much time has passed since it began.

        A room's update costs about the same for one new event as for ten, so under a
        trickle of events (single events from many clients) a round that waits for those
        that follow applies several per room at once. A long round (a backlog, big batches)
        is followed at once: waiting would only add to the lag."""
        if not busy.intersection(self.held):
            return busy
        wait = self._next_round - self._monotonic()
        if wait > 0 and not self._pause(wait):
            busy = self._look()
        return busy

    def _round(self, busy: set[int]) -> int:
        """Apply what is waiting in `busy`, and decide when the next round may begin: at once
        after a long round or one that left events waiting (a turn cut short)."""
        began = self._monotonic()
        applied, cut = self._apply(busy)
        took = self._monotonic() - began
        short = applied and took < self.gather / 2 and not cut
        self._next_round = began + self.gather if short else 0.0
        return applied

    def _apply(self, busy: set[int]) -> tuple[int, bool]:
        """Apply what is waiting in `busy`, a turn per partition, the partitions dealt out
        to the applier's threads: how many pending rows, and whether a turn was cut short
        with events still waiting."""
        mine = [part for part in self.held if part in busy]
        threads = min(self.threads, len(mine))
        if threads > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="roomlog-apply")
            shares = [mine[i::threads] for i in range(threads)]
            running = [self._pool.submit(self._apply_parts, share) for share in shares]
            # Every share ends before the round does, a failed one too: the next round must
            # not deal a partition to a thread while another still applies it.
            wait(running)
            done = [future.result() for future in running]  # the first failure, if any
            applied, cut = sum(d[0] for d in done), any(d[1] for d in done)
        else:
            applied, cut = self._apply_parts(mine)
        if applied:
            metrics.APPLIED.inc(applied)
            if self.applied is not None:
                self.applied.set()
        return applied, cut

    def _apply_parts(self, parts: list[int]) -> tuple[int, bool]:
        """Apply what is waiting in `parts` in one thread: on SQLite several partitions a
        transaction (`apply_parts`), elsewhere one after the other."""
        if self.store.database.sqlite and len(parts) > 1:
            return self._apply_together(parts)
        applied, cut = 0, False
        for part in parts:
            ends = self._monotonic() + TURN
            while taken := apply_pending(self.store, part, self.holder, self.clock(), _wall()):
                applied += taken
                if self._monotonic() >= ends:
                    cut = True  # the rest waits for this partition's next turn
                    break
        return applied, cut

    def _apply_together(self, parts: list[int]) -> tuple[int, bool]:
        """Apply what is waiting in `parts`, several partitions a transaction, until none
        has any left or their turns' time is up (then the rest waits for the next round)."""
        applied, ends = 0, self._monotonic() + TURN * len(parts)
        active = list(parts)
        while active:
            taken = apply_parts(self.store, active, self.holder, self.clock(), _wall())
            applied += sum(taken.values())
            # A partition with nothing left drops out; those not taken go first next time,
            # and those just applied after them, so that a backlog starves no other.
            active = [p for p in active if p not in taken] + [p for p in active if taken.get(p)]
            if active and self._monotonic() >= ends:
                return applied, True
        return applied, False

    def _time_passes(self) -> None:
        if not self.held:
            return
        for _ in range(50):  # bounded, so pending events wait little behind a backlog
            if self.store.tick(self.clock(), parts=self.held) == 0:
                break
        if self.stale_after and time.monotonic() >= self._next_sweep:
            # A tenth of the timeout between sweeps (at most a minute).
            self._next_sweep = time.monotonic() + min(60.0, self.stale_after / MICROS / 10)
            self.store.close_stale(self.clock(), self.stale_after)

    def applied_through(self) -> int:
        """An instant (µs) such that every event acknowledged before it is applied."""
        oldest = self.oldest_pending
        return self.checked_at if oldest is None else min(oldest, self.checked_at)


def run_process(
    url: str,
    settings: Settings,
    tick: float,
    stale_after: int,
    stop: Receiver,
    wake: Receiver,
    applied: Sender,
    beat: Beat,
) -> None:
    """An applier in a process of its own (`roomlog serve --appliers process`): it applies
    until `stop` is set or the process that started it is gone. `wake` is set by the
    server's writer when it appended events; the applier sets `applied` when it applied
    some, for the server's watcher to look again."""
    parent = os.getppid()
    logs.configure()
    collector.pace()
    # The server stops it (through `stop`) once its requests are answered; a signal sent to
    # the whole group (Ctrl-C, a service manager) must not cut it short before that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    database = open_database(url)
    store = Store(database, settings)
    applier = Applier(store, _wall, tick, stale_after, wake=wake, applied=applied, beat=beat)
    applier.start()
    try:
        # Until told to stop, or the server is gone (its ends of the pipes close with it).
        while not stop.wait(RENEW) and not wake.gone and os.getppid() == parent:
            pass
    finally:
        applier.stop()
        database.dispose()
        logs.close()
