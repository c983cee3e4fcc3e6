"""The vacuumer: a thread per `roomlog serve` process on PostgreSQL that vacuums the tables
applying rewrites most, every `EVERY` seconds when their dead rows passed the threshold
(`roomlog.store.vacuum`). One process vacuums at a time; the others skip that round."""

from __future__ import annotations

import logging
import threading
from typing import Final

from roomlog import metrics
from roomlog.store.db import Database
from roomlog.store.vacuum import vacuum

log = logging.getLogger("roomlog.vacuum")

EVERY: Final = 2.0  # seconds between looks at the tables' dead rows


class Vacuumer:
    def __init__(self, database: Database, every: float = EVERY) -> None:
        self.database = database
        self.every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomlog-vacuum", daemon=True)
        self._failing = False

    def start(self) -> None:
        if not self.database.sqlite:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> list[str]:
        """One look: the tables vacuumed. A failure is logged once until one succeeds."""
        try:
            tables = vacuum(self.database)
        except Exception:
            if not self._failing:
                log.exception("vacuuming failed; trying again every %.0f s", self.every)
            self._failing = True
            return []
        self._failing = False
        for name in tables:
            metrics.labelled(metrics.VACUUMS, name).inc()
        if tables:
            log.debug("vacuumed %s", ", ".join(tables))
        return tables

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            self.run_once()
