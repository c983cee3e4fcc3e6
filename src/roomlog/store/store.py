"""The write path: the event log, per-room serialisation, and stored sessions kept current.

Every write is one transaction that
1. appends the new events to the log (a repeated id is a no-op, or a rejection if the content
   differs), inserting in id order so two writers never wait on each other in a cycle;
2. locks the row of every room it touches (`SELECT ... FOR UPDATE`, in name order; SQLite's
   `BEGIN IMMEDIATE` already makes the whole transaction exclusive);
3. feeds the events to each room's incremental engine state and writes back the sessions that
   changed, the new state, and when time alone will next change the room (`due_at`). Each
   write raises the row's `version`; a process keeps the decoded states it wrote, and uses one
   again only if the version it finds under the lock is still the one it wrote.
Chat messages are appended to their own log in the same transaction; they change no session.
The row lock makes concurrent writers of one room take turns, and each one sees the state the
previous one committed, so any interleaving ends with the sessions of all the events.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Collection, Sequence
from contextlib import nullcontext
from typing import Final

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from roomlog.domain import strings
from roomlog.domain.engine import LateEvent, Stamped, Wide, stamp
from roomlog.domain.events import (
    PresenceEvent,
)
from roomlog.ingest.webhook import derived_id
from roomlog.store import outbox, statements
from roomlog.store import rooms as room_state
from roomlog.store.behind import defer, partitions
from roomlog.store.chat import write_chats
from roomlog.store.checkpoints import keep, keep_held, rebuild_project, replace
from roomlog.store.db import Database
from roomlog.store.leases import part_of
from roomlog.store.log import (
    append,
    content,
    log_rows,
)
from roomlog.store.projects import Project, project_by_id
from roomlog.store.rebuilding import rebuilt
from roomlog.store.schema import rooms
from roomlog.store.snapshots import close_stale
from roomlog.store.transactions import Transactions, Turn, retrying
from roomlog.store.wide import append_new, room_events_of, rooms_of
from roomlog.store.writes import (
    IngestResult,
    Settings,
    Submission,
    admitted,
    all_admitted,
    conflict,
)

log = logging.getLogger("roomlog.store")

# Rooms whose decoded state a process keeps between writes (least recently written dropped).
ROOM_CACHE: Final = 20_000


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.written: dict[tuple[int, str], tuple[int, room_state.RoomState]] = {}
        self.queued = 0


class Store:
    def __init__(self, database: Database, settings: Settings | None = None) -> None:
        self.database = database
        self.settings = settings or Settings()
        self._insert = sqlite_insert if database.sqlite else pg_insert
        self._sql = statements.SQLITE if database.sqlite else statements.POSTGRES
        self._tenants: dict[int, str] = {}
        # The decoded state of rooms this process wrote, with the version it wrote; a room
        # taken out for a write goes back in only once that write has committed.
        self._rooms: dict[tuple[int, str], tuple[int, room_state.RoomState]] = {}
        # Set when a committed transaction queued webhook events: the deliverer waits on it.
        self.queued = threading.Event()
        # What the calling thread's transaction wrote (the writer and the applier each run
        # their own): room states, and how many webhook events it queued.
        self._here = _PerThread()
        self.turn = Turn(database)  # one room-writing transaction at a time
        self.transactions = Transactions(database)
        self.parts: int | None = None  # the database's partition count, once known
        self.rebuild_events = 0  # events read back from the log to rebuild rooms, in all
        # Within this block, the calling thread's transactions share one connection.
        self.holding = self.transactions.holding

    # -- ingest ---------------------------------------------------------------------------

    def ingest(
        self, submissions: Sequence[Submission], now: int, behind: bool = False
    ) -> list[IngestResult]:
        """Store the events of several requests in one transaction (a group commit), and
        apply them to their rooms in it; `behind`: leave them to their partitions' appliers
        (`behind.apply_pending`). Room ends and snapshots are always applied at once."""
        for submission in submissions:
            self._tenants[submission.project.id] = submission.project.name
        return self._ingest(submissions, now, behind)

    @retrying
    def _ingest(
        self, submissions: Sequence[Submission], now: int, behind: bool = False
    ) -> list[IngestResult]:
        self._here.queued = 0
        self._here.written = {}
        # An append left to the appliers writes no room: on PostgreSQL it needs no turn, and
        # the writer's threads append side by side (SQLite has one writer at a time anyway).
        turn = self.turn if self.database.sqlite or not behind else nullcontext()
        with turn, self.transactions.begin() as connection:
            results = self._write(connection, submissions, now, behind)
        self._committed()
        self._announced()
        return results

    def _committed(self) -> None:
        """Keep the states of the rooms the committed transaction wrote."""
        cache = self._rooms
        cache.update(self._here.written)
        self._here.written = {}
        while len(cache) > ROOM_CACHE:  # another applier thread may take one out meanwhile
            cache.pop(next(iter(cache)), None)

    def _announced(self) -> None:
        if self._here.queued:
            self._here.queued = 0
            self.queued.set()

    def _write(
        self,
        connection: Connection,
        submissions: Sequence[Submission],
        now: int,
        behind: bool = False,
    ) -> list[IngestResult]:
        results = [IngestResult(0, 0, []) for _ in submissions]
        window = self.settings.window(now)
        if any(submission.chats for submission in submissions):
            write_chats(connection, self._insert, window, submissions, results, now)
        # First occurrence of each (project, id) in this group; later ones compare with it.
        first: dict[tuple[int, str], tuple[int, int, PresenceEvent]] = {}
        repeats: list[tuple[int, int, PresenceEvent]] = []
        # Checked for the whole group at once: a group of single events is many submissions.
        all_given = all_admitted([e for s in submissions for e in s.events], window)
        for n, submission in enumerate(submissions):
            pid = submission.project.id
            as_given = all_given or all_admitted(submission.events, window)
            for index, given in submission.events:
                event = (
                    given
                    if as_given
                    else admitted(given, strings.presence, index, results[n].rejected, window)
                )
                if event is None:
                    continue
                key = (pid, event.id)
                if key in first:
                    repeats.append((n, index, event))
                else:
                    first[key] = (n, index, event)
        wide_items = room_events_of(connection, self._insert, submissions, results, window)
        fresh_wide = append_new(connection, self._insert, submissions, results, wide_items, now)
        if not first and not fresh_wide:
            return results
        rows = log_rows(first, now)
        inserted, existing = (
            append(connection, self._sql, rows, list(first)) if rows else (set(), {})
        )
        fresh: defaultdict[tuple[int, str], list[Stamped]] = defaultdict(list)
        now_too = not behind or bool(fresh_wide)  # apply in this transaction
        for key, (n, index, event) in first.items():
            if key in inserted:
                results[n].accepted += 1
                if now_too:
                    fresh[(key[0], event.room)].append(stamp(event))
            elif existing.get(key) == content(event) or (
                key in existing and submissions[n].id_is_identity
            ):
                results[n].duplicates += 1
            else:
                results[n].rejected.append(conflict(index, event))
        for n, index, event in repeats:
            # Compared with what the log holds: the first occurrence, if it was appended.
            key = (submissions[n].project.id, event.id)
            held = existing[key] if key in existing else content(first[key][2])
            if held == content(event) or submissions[n].id_is_identity:
                results[n].duplicates += 1
            else:
                results[n].rejected.append(conflict(index, event))
        for result in results:
            result.rejected.sort(key=lambda r: r.index)
        if not now_too:
            defer(self, connection, first, inserted, now)
            return results
        # Who listens, per project: read once for this transaction's meeting and participant events.
        touched = {p for p, _ in inserted} | {p for p, _ in fresh_wide}
        subs = {pid: self._subscribers(connection, pid) for pid in sorted(touched)}
        changed = self._update_rooms(connection, fresh, fresh_wide, now, subs)
        for n, submission in enumerate(submissions):
            results[n].changed = sum(
                changed.get((submission.project.id, room), 0) for room in rooms_of(submission)
            )
        self._announce_participants(connection, first, inserted, now, subs)
        return results

    # -- webhooks out ---------------------------------------------------------------------

    def _announce_participants(
        self,
        connection: Connection,
        stored: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
        inserted: set[tuple[int, str]],
        now: int,
        subs: dict[int, list[outbox.Subscriber]],
    ) -> None:
        by_project: defaultdict[int, list[PresenceEvent]] = defaultdict(list)
        for key in sorted(inserted):
            by_project[key[0]].append(stored[key][2])
        for pid, fresh in by_project.items():
            if subs[pid]:
                items = outbox.participant_events(connection, pid, fresh)
                self._here.queued += outbox.queue(
                    connection, self.database.sqlite, subs[pid], items, now
                )

    def _subscribers(self, connection: Connection, project_id: int) -> list[outbox.Subscriber]:
        found = statements.rows(connection, self._sql.subscribers, (project_id,))
        return [outbox.Subscriber(wid, frozenset(json.loads(types))) for wid, types in found]

    # -- rooms ----------------------------------------------------------------------------

    def _lock_rooms(
        self, connection: Connection, project_id: int, names: list[str]
    ) -> dict[str, int]:
        """Lock the rows of `names` (creating missing ones) in name order; their versions."""
        versions = self._locked(connection, project_id, names)
        missing = [n for n in names if n not in versions]
        if missing:
            statements.run_many(
                connection, self._sql.new_rooms, [(project_id, n, b"", b"") for n in missing]
            )
            versions.update(self._locked(connection, project_id, missing))
        return versions

    def _locked(self, connection: Connection, project_id: int, names: list[str]) -> dict[str, int]:
        sql = self._sql
        return dict(statements.rows(connection, sql.locked_keyed, (sql.keys(names), project_id)))

    def _states(
        self, connection: Connection, project_id: int, versions: dict[str, int]
    ) -> dict[str, room_state.RoomState]:
        """The states of the locked rooms `versions`: kept ones if no other process wrote them
        since, else read from their rows. Kept ones leave the cache until the write commits."""
        found: dict[str, room_state.RoomState] = {}
        stale: list[str] = []
        for name, version in versions.items():
            kept = self._rooms.pop((project_id, name), None)
            if kept is not None and kept[0] == version:
                found[name] = kept[1]
            else:
                stale.append(name)
        if stale:
            rules, tenant = self.settings.rules, self._tenant(connection, project_id)
            sql = self._sql
            chunks: defaultdict[str, list[bytes]] = defaultdict(list)
            held = statements.rows(connection, sql.held_keyed, (sql.keys(stale), project_id))
            for name, chunk in held:
                chunks[name].append(chunk)
            for name, blob in statements.rows(
                connection, sql.states_keyed, (sql.keys(stale), project_id)
            ):
                found[name] = room_state.load_room(name, blob, rules, tenant, chunks.get(name, ()))
            for name in stale:  # no row yet (a read outside a write): a room with no events
                found.setdefault(name, room_state.load_room(name, b"", rules, tenant))
        return found

    def _update_rooms(
        self,
        connection: Connection,
        fresh: dict[tuple[int, str], list[Stamped]],
        fresh_wide: dict[tuple[int, str], list[Wide]],
        now: int,
        subs: dict[int, list[outbox.Subscriber]],
    ) -> dict[tuple[int, str], int]:
        """Apply the new events to their rooms; per (project, room) with new room ends or
        snapshots, how many joins and leaves they made."""
        by_project: defaultdict[int, set[str]] = defaultdict(set)
        for pid, name in [*fresh, *fresh_wide]:
            by_project[pid].add(name)
        changed: dict[tuple[int, str], int] = {}
        for pid in sorted(by_project):
            versions = self._lock_rooms(connection, pid, sorted(by_project[pid]))
            writes = self._plan(connection, pid, versions, fresh, fresh_wide, now)
            self._write_plan(connection, pid, writes, versions, now, subs[pid])
            for name, w in writes.items():
                if (pid, name) in fresh_wide:
                    changed[(pid, name)] = len(w.derived)
        return changed

    def _plan(
        self,
        connection: Connection,
        pid: int,
        versions: dict[str, int],
        fresh: dict[tuple[int, str], list[Stamped]],
        fresh_wide: dict[tuple[int, str], list[Wide]],
        now: int,
    ) -> dict[str, room_state.RoomWrite]:
        """What the new events make of the rooms `versions` of project `pid` (read only)."""
        states = self._states(connection, pid, versions)
        return {
            name: self._advance(
                connection,
                pid,
                name,
                state,
                fresh.get((pid, name), []),
                now,
                fresh_wide.get((pid, name)),
            )
            for name, state in states.items()
        }

    def _write_plan(
        self,
        connection: Connection,
        pid: int,
        writes: dict[str, room_state.RoomWrite],
        versions: dict[str, int],
        now: int,
        subs: list[outbox.Subscriber],
    ) -> None:
        """Write `writes` (`_plan`) and queue the events they made for `subs`."""
        self._apply(connection, pid, writes, versions, now, subs)
        derived = [e for w in writes.values() for e in w.derived]
        if derived and subs:
            items = outbox.participant_events(connection, pid, derived)
            self._here.queued += outbox.queue(connection, self.database.sqlite, subs, items, now)

    def _tenant(self, connection: Connection, project_id: int) -> str:
        name = self._tenants.get(project_id)
        if name is None:
            name = project_by_id(connection, project_id).name
            self._tenants[project_id] = name
        return name

    def _advance(
        self,
        connection: Connection,
        project_id: int,
        name: str,
        state: room_state.RoomState,
        new: list[Stamped],
        now: int,
        new_wide: list[Wide] | None = None,
    ) -> room_state.RoomWrite:
        checkpoint = state.room.checkpoint.at
        if checkpoint is not None:
            now = max(now, checkpoint)
        try:
            return room_state.advance(
                project_id,
                state,
                new,
                now,
                self.settings.late_window,
                new_wide,
                derived_id,
            )
        except LateEvent as late:
            return rebuilt(self, connection, project_id, name, now, late)

    def _apply(
        self,
        connection: Connection,
        project_id: int,
        writes: dict[str, room_state.RoomWrite],
        versions: dict[str, int],
        now: int,
        subs: list[outbox.Subscriber],
    ) -> None:
        """Write what `writes` hold, and queue their meeting events for `subs`."""
        for name, w in writes.items():
            if w.replace_all:
                replace(connection, project_id, name, w.replace_from)
        keep(connection, project_id, writes)
        deletes = [(project_id, sid) for w in writes.values() for sid in w.deletes]
        if deletes:
            statements.run_many(connection, self._sql.delete_sessions, deletes)
        upserts = [row for w in writes.values() for row in w.upserts]
        if upserts:
            statements.run_many(
                connection,
                self._sql.upsert_sessions,
                [
                    (
                        project_id,
                        row["id"],
                        row["room"],
                        row["start_at"],
                        row["end_at"],
                        row["max_participants"],
                        row["participant_count"],
                        row["participants"],
                        row["attended"],
                    )
                    for row in upserts
                ],
            )
            # A rebuilt room announces nothing: its sessions were announced as they happened.
            changed = [row for w in writes.values() if not w.replace_all for row in w.upserts]
            if subs and changed:
                items = outbox.meeting_events(project_id, changed)
                sqlite = self.database.sqlite
                self._here.queued += outbox.queue(connection, sqlite, subs, items, now)
        statements.run_many(
            connection,
            self._sql.write_rooms,
            [
                (
                    w.state,
                    w.due_at,
                    w.occupancy,
                    w.presence,
                    w.session_count,
                    versions[name] + 1,
                    project_id,
                    name,
                )
                for name, w in writes.items()
            ],
        )
        keep_held(connection, project_id, writes, versions)
        for name, w in writes.items():
            self._here.written[(project_id, name)] = (versions[name] + 1, w.after)

    # -- time -----------------------------------------------------------------------------

    def tick(self, now: int, limit: int = 200, parts: Collection[int] | None = None) -> int:
        """Apply what the passage of time changed in rooms due by `now` (of partitions
        `parts`, or all); how many rooms."""
        return self._tick(now, limit, parts)

    @retrying
    def _tick(self, now: int, limit: int, parts: Collection[int] | None) -> int:
        self._here.queued = 0
        self._here.written = {}
        with self.turn, self.transactions.begin(derived=True) as connection:
            # Only this process's partitions' rooms are locked, so none is skipped by both.
            query = select(rooms.c.project_id, rooms.c.name).where(rooms.c.due_at <= now)
            mine: defaultdict[int, list[str]] = defaultdict(list)
            count, taken = partitions(self, connection), 0
            for pid, name in connection.execute(query.order_by(rooms.c.due_at)):
                if taken < limit and (parts is None or part_of(pid, name, count) in parts):
                    mine[pid].append(name)
                    taken += 1
            due = {
                pid: self._lock_rooms(connection, pid, sorted(mine[pid])) for pid in sorted(mine)
            }
            for pid, versions in due.items():
                writes = self._plan(connection, pid, versions, {}, {}, now)
                self._apply(
                    connection, pid, writes, versions, now, self._subscribers(connection, pid)
                )
        self._committed()
        self._announced()
        return sum(len(s) for s in due.values())

    def close_stale(self, now: int, stale_after: int) -> int:
        """End every presence with no event and no snapshot for `stale_after`, at the last
        time it was seen (its join, or the latest snapshot listing it); how many."""
        return close_stale(self, now, stale_after)

    # -- rebuild --------------------------------------------------------------------------

    def rebuild(self, project: Project, now: int) -> int:
        """Recompute every room of `project` from its event log; how many rooms."""
        self._tenants[project.id] = project.name
        return rebuild_project(self, project.id, now)

    @retrying
    def rebuild_rooms(self, project_id: int, names: list[str], now: int) -> None:
        self._here.written = {}
        with self.turn, self.transactions.begin() as connection:
            versions = self._lock_rooms(connection, project_id, names)
            for name in names:
                self._rooms.pop((project_id, name), None)
            writes = {name: rebuilt(self, connection, project_id, name, now) for name in names}
            self._apply(connection, project_id, writes, versions, now, [])  # announces nothing
        self._committed()
