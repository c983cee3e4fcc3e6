"""The event log keeps every string exactly as given: tabs, newlines, backslashes, quotes and
text outside ASCII go into the log (on PostgreSQL, through `COPY`) and come back unchanged,
and a repeated delivery of them compares equal, as a duplicate."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from roomlog.domain.events import JOINED, MICROS, PresenceEvent
from roomlog.store.db import Database
from roomlog.store.projects import ensure_project
from roomlog.store.schema import events
from roomlog.store.store import Store
from roomlog.store.writes import Settings, Submission
from tests.fixtures import T0

# What a sender may put in a name: anything but U+0000 (refused) and surrogates (not text).
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(
    lambda s: s.strip() == s
)
_AWKWARD = [
    "tab\there",
    "new\nline",
    "back\\slash",
    "\\N",
    'quote"s',
    "é 😀 中文",
    "\\.",
    "x" * 256,
]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_TEXT.filter(lambda s: len(s) <= 200), min_size=1, max_size=5))
def test_strings_come_back_from_the_log_as_given(database: Database, names: list[str]) -> None:
    store = Store(database, Settings())
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, f"strings-{uuid.uuid4().hex}")
    at = (T0 + 10) * MICROS
    given = [
        PresenceEvent(f"{n}#{name[:250]}", JOINED, name, name, at + n, name, name)
        for n, name in enumerate(_AWKWARD + names)
    ]
    submission = Submission(project, list(enumerate(given)))
    first = store.ingest([submission], at + MICROS * 60, behind=True)[0]
    assert (first.accepted, first.rejected) == (len(given), [])
    with database.engine.connect() as connection:
        stored = {
            row.id: (row.room, row.participant_id, row.user_id, row.user_name)
            for row in connection.execute(select(events).where(events.c.project_id == project.id))
        }
    assert stored == {e.id: (e.room, e.participant_id, e.user_id, e.user_name) for e in given}
    again = store.ingest([submission], at + MICROS * 60, behind=True)[0]
    assert (again.accepted, again.duplicates, again.rejected) == (0, len(given), [])
