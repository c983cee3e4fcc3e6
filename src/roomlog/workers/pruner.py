"""The pruner: a thread per `roomlog serve` process that removes, every hour, what is older
than the service keeps (`roomlog.store.retention`). Several processes may prune at once:
they remove the same rows, each in small transactions."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from roomlog.store.retention import prune
from roomlog.store.store import Store

log = logging.getLogger("roomlog.retention")

FIRST: Final = 60.0  # seconds after start
EVERY: Final = 3600.0


class Pruner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roomlog-pruner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        wait = FIRST
        while not self._stopping.wait(wait):
            wait = EVERY
            try:
                pruned = prune(
                    self.store,
                    time.time_ns() // 1000,
                    self.store.settings.retention,
                    stop=self._stopping,
                )
            except Exception:
                log.exception("pruning failed; trying again in an hour")
                continue
            if pruned.total:
                shown = ", ".join(f"{n} {table}" for table, n in pruned.rows.items() if n)
                log.info("removed what retention no longer keeps: %s", shown)
