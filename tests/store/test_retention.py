"""Retention's invariant, for any history and any cutoff: pruning removes no session that
ended at or after the cutoff (nor an ongoing one), changes none it keeps, and a rebuild of
the pruned rooms finds exactly the sessions kept."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from roomlog.domain.events import MICROS, PresenceEvent
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.queries import SESSION_COLUMNS
from roomlog.store.retention import prune
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from tests.fixtures import RULES, T0, make_project
from tests.helpers import histories

HOUR = 3600 * MICROS
SPAN = 2 * 86_400 * MICROS  # the histories' length


def _sessions(database: Database) -> dict[str, tuple[Any, ...]]:
    with database.engine.connect() as connection:
        return {row[0]: tuple(row[1:]) for row in connection.execute(select(*SESSION_COLUMNS))}


@settings(max_examples=100)
@given(
    history=histories(rooms=("r", "s"), latest=SPAN, step=20 * 60 * MICROS, most=40),
    cut=st.integers(min_value=0, max_value=SPAN // HOUR + 6),
)
def test_pruning_keeps_what_retention_keeps(history: list[PresenceEvent], cut: int) -> None:
    events = [
        PresenceEvent(e.id, e.type, e.room, e.participant_id, T0 * MICROS + e.at, e.user_id)
        for e in sorted(history, key=lambda e: e.at)
    ]
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'retention.db'}")
        migrate(database)
        project, _ = make_project(database, "default")
        store = Store(database, Settings(rules=RULES))
        # Arriving in four parts as time goes by, so the rooms settle along the way.
        for n in range(4):
            part = events[n * len(events) // 4 : (n + 1) * len(events) // 4]
            now = T0 * MICROS + (n + 1) * SPAN // 4 + HOUR
            store.ingest([Submission(project, list(enumerate(part)))], now)
            while store.tick(now):
                pass
        now = T0 * MICROS + SPAN + 6 * HOUR
        while store.tick(now):
            pass
        before = _sessions(database)
        cutoff = T0 * MICROS + cut * HOUR
        pruned = prune(store, now, now - cutoff)
        event(f"sessions removed: {'some' if pruned.rows['sessions'] else 'none'}")
        event(f"events removed: {'some' if pruned.rows['events'] else 'none'}")
        after = _sessions(database)
        assert all(before[sid] == kept for sid, kept in after.items())
        retained = {sid for sid, s in before.items() if s[2] is None or s[2] >= cutoff}
        assert retained <= after.keys()
        store.rebuild(project, now)
        assert _sessions(database) == after
        database.dispose()
