"""The vacuumer: a thread per `roomlog serve` process on PostgreSQL that, every `EVERY`
seconds, vacuums the tables applying rewrites most once their dead rows passed the threshold,
and analyses the tables the reads plan on once a tenth of them changed
(`roomlog.store.vacuum`). One process does it at a time; the others skip that round."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from roomlog import metrics
from roomlog.store.db import Database
from roomlog.store.vacuum import vacuum

log = logging.getLogger("roomlog.vacuum")

EVERY: Final = 2.0  # seconds between looks at the tables' dead rows
MAX_REST: Final = 60.0  # seconds at most that a table a vacuum could not free is left alone


class Vacuumer:
    def __init__(
        self,
        database: Database,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.every = every
        self.clock = clock
        # Tables whose last vacuum left them still due: until when they rest, and for how long.
        self._resting: dict[str, tuple[float, float]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomlog-vacuum", daemon=True)
        self._failing = False

    def start(self) -> None:
        if not self.database.sqlite:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            # A vacuum under way may be left to finish or be dropped with the connection.
            self._thread.join(timeout=5)

    def run_once(self) -> list[str]:
        """One look: the tables vacuumed. A failure is logged once until one succeeds."""
        now = self.clock()
        resting = {name for name, (until, _) in self._resting.items() if until > now}
        try:
            tables, stuck, analysed = vacuum(self.database, resting=resting)
        except Exception:
            if not self._failing:
                log.exception("vacuuming failed; trying again every %.0f s", self.every)
            self._failing = True
            return []
        self._failing = False
        for name in tables:
            metrics.labelled(metrics.VACUUMS, name).inc()
            if name in stuck:
                rest = min(MAX_REST, 2 * self._resting.get(name, (0.0, self.every))[1])
                self._resting[name] = (now + rest, rest)
                log.info(
                    "vacuuming %s freed too little: an open transaction still sees its dead rows;"
                    " next try in %.0f s",
                    name,
                    rest,
                )
            else:
                self._resting.pop(name, None)
        for name in analysed:
            metrics.labelled(metrics.ANALYSES, name).inc()
        if tables or analysed:
            log.debug("vacuumed %s; analysed %s", ", ".join(tables), ", ".join(analysed))
        return tables

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            self.run_once()
