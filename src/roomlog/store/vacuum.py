"""Vacuuming the tables PostgreSQL rewrites the most, as soon as their dead rows pile up.

Every applied batch rewrites its rooms' rows, deletes the `pending` rows it applied and
updates sessions; leases are renewed every second; each webhook event is claimed and marked
delivered. In PostgreSQL each of those leaves a dead row version behind until a vacuum frees
it. Autovacuum may be off (some installations turn it off), and when on it looks once a
minute and waits for a fifth of a table to be dead: at 20,000 events/s, `rooms` gathered
700,000 dead rows beside 20,000 live ones within two minutes, and the appliers, reading
through them, fell from 26,000 to a few hundred events/s (docs/PERFORMANCE.md). So the
service vacuums these tables itself once their dead rows pass `AT_LEAST` and a fifth of
their live ones. Such a `VACUUM` blocks neither reads nor writes; one process at a time does
it (a session advisory lock per schema), the others skip, and none starts while a migration
runs (it holds the same lock). A vacuum that frees too little, because an open transaction
still sees the dead rows, is not repeated every round: the table rests, twice as long each
time, up to a minute (`workers/vacuumer.py`). Nor does anything else keep the statistics of
the tables the reads plan on current: they are analysed the same way once a tenth of them
changed. SQLite reuses freed pages by itself and plans
without such statistics: nothing to do there.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, NamedTuple

from sqlalchemy import Connection, text

from roomlog.store.db import MAINTENANCE_LOCK, Database

# The tables rewritten by every applied batch, every lease renewal or every webhook sent.
HOT: Final = ("pending", "rooms", "room_held", "sessions", "partitions", "outbox")
AT_LEAST: Final = 5_000  # dead rows in a table before it is vacuumed
# The tables whose statistics the reads' plans lean on: analysed once a tenth of their rows
# (and at least `AT_LEAST`) changed since the last time. Without autovacuum nothing else
# does, and the meetings list took 15.9 ms instead of 5.7 over 150,000 events.
READ: Final = ("sessions", "events", "rooms", "checkpoints")


def _past(
    connection: Connection, names: tuple[str, ...], counted: str, share: int, at_least: int
) -> list[str]:
    """Those of `names` (in the connection's schema) whose `counted` column of PostgreSQL's
    statistics passed `at_least` and a `share`-th of their live rows."""
    found = connection.execute(
        text(
            f"SELECT relname, n_live_tup, {counted} FROM pg_stat_user_tables"
            " WHERE relid IN (SELECT to_regclass(name) FROM unnest(CAST(:names AS text[])) name)"
        ),
        {"names": list(names)},
    ).all()
    counts = {name: (live, count) for name, live, count in found}
    return [
        name
        for name in names
        if name in counts and counts[name][1] >= max(at_least, counts[name][0] // share, 1)
    ]


def due(connection: Connection, at_least: int = AT_LEAST) -> list[str]:
    """The hot tables whose dead rows passed `at_least` and a fifth of their live rows, as
    PostgreSQL's statistics last counted them."""
    return _past(connection, HOT, "n_dead_tup", 5, at_least)


def stale(connection: Connection, at_least: int = AT_LEAST) -> list[str]:
    """The `READ` tables whose rows changed by a tenth (and at least `at_least`) since
    PostgreSQL last analysed them."""
    return _past(connection, READ, "n_mod_since_analyze", 10, at_least)


class Vacuumed(NamedTuple):
    tables: list[str]  # vacuumed
    # Vacuumed, yet as dead as before: an open transaction still sees their dead rows (a
    # long report, a forgotten session), and vacuuming them again frees nothing until it ends.
    stuck: list[str]
    analysed: list[str]


def vacuum(database: Database, at_least: int = AT_LEAST, resting: Collection[str] = ()) -> Vacuumed:
    """Vacuum the hot tables that are due (`due`), but those `resting`, and analyse the
    `stale` ones. Nothing on SQLite, or while another process does it for this schema."""
    if database.sqlite:
        return Vacuumed([], [], [])
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        lock = {"key": MAINTENANCE_LOCK}
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))"), lock
        ).scalar()
        if not taken:
            return Vacuumed([], [], [])
        try:
            tables = [name for name in due(connection, at_least) if name not in resting]
            for name in tables:  # names from HOT, never from input
                # Without cutting the table's empty end pages off: that takes an exclusive
                # lock, however briefly, and these tables fill again at once.
                connection.execute(text(f'VACUUM (TRUNCATE false) "{name}"'))
            # A vacuum reports the dead rows it could not free at once.
            stuck = [name for name in due(connection, at_least) if name in tables]
            analysed = stale(connection, at_least)
            for name in analysed:  # names from READ
                connection.execute(text(f'ANALYZE "{name}"'))
        finally:
            connection.execute(
                text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))"), lock
            )
    return Vacuumed(tables, stuck, analysed)
