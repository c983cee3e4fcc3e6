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
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from roomlog.domain.engine import LateEvent, Stamped, stamp
from roomlog.domain.events import JOINED, LEFT, MICROS, ChatMessage, EventType, PresenceEvent
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.ingest.webhook import RoomEnd, Snapshot, derived_id
from roomlog.store import outbox, statements
from roomlog.store import rooms as room_state
from roomlog.store.db import Database
from roomlog.store.projects import Project, project_by_id
from roomlog.store.schema import chat_messages, events, rooms, sessions, sightings

log = logging.getLogger("roomlog.store")

# Rooms whose decoded state a process keeps between writes (least recently written dropped).
ROOM_CACHE: Final = 20_000

# How far back a room end or a snapshot looks for presences still open: one open longer than
# this is left to its own leave (or to the stale-presence timeout).
LOOKBACK: Final = 7 * 86_400 * MICROS


class Rejected(msgspec.Struct):
    """One item of a batch that was not stored, and why."""

    index: int
    reason: str


class IngestResult(msgspec.Struct):
    """What became of a request's events."""

    accepted: int
    duplicates: int
    rejected: list[Rejected]


@dataclass(frozen=True, slots=True)
class Settings:
    rules: Rules = DEFAULT_RULES
    # Events stamped more than this before `now` may arrive and are applied incrementally;
    # later than that they make the room rebuild from its event log (still exact, slower).
    late_window: int = 600 * MICROS
    # How far ahead of the server's clock an event may be stamped.
    max_skew: int = 60 * MICROS


@dataclass(frozen=True, slots=True)
class Submission:
    """One request's events for one project, each with its index in the request.

    `room_ends` and `snapshots` become events inside the write transaction, against the event
    log as it stands: a room end closes every presence open at its instant, a snapshot closes
    the presences it does not list and opens those it lists that are missing.
    """

    project: Project
    events: Sequence[tuple[int, PresenceEvent]]
    room_ends: Sequence[tuple[int, RoomEnd]] = ()
    snapshots: Sequence[tuple[int, Snapshot]] = ()
    # A provider's redelivery may differ from the first delivery where the provider sends no
    # time (roomlog stamps arrival): its id alone says it is the same event.
    id_is_identity: bool = False
    chats: Sequence[tuple[int, ChatMessage]] = ()


class ConcurrentAppend(Exception):
    """Another writer stored some of the same event ids while this one was writing them."""


class LostConnection(Exception):
    """The connection a thread held broke during a transaction (the server restarted, or
    ended the session): the transaction is tried again on a fresh one."""


def _transient(exc: BaseException) -> bool:
    """Deadlocks and serialisation failures in PostgreSQL, a busy database in SQLite, and
    events stored by another process at the same time."""
    if isinstance(exc, ConcurrentAppend | LostConnection):
        return True
    # The write path's own statements raise the driver's errors, not SQLAlchemy's.
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, sqlite3.OperationalError):
        return "database is locked" in str(error)
    return getattr(error, "sqlstate", None) in ("40P01", "40001")


_retrying = retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(8),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    reraise=True,
)


def _content(event: PresenceEvent) -> tuple[Any, ...]:
    return (
        event.room,
        event.type == JOINED,
        event.participant_id,
        event.user_id,
        event.user_name,
        event.at,
    )


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
        self._written: dict[tuple[int, str], tuple[int, room_state.RoomState]] = {}
        # Set when a committed transaction queued webhook events: the deliverer waits on it.
        self.queued = threading.Event()
        self._queued = 0
        # A connection a thread keeps between its transactions (see `holding`).
        self._held = threading.local()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within this block, the calling thread's transactions share one connection.

        The writer thread holds one for its life: no pool checkout and reset per group, and
        SQLite keeps its page cache between transactions. A transaction that fails gives the
        connection up, and the next one takes a fresh one from the pool.
        """
        self._held.connection = None
        self._held.holding = True
        try:
            yield
        finally:
            self._held.holding = False
            held, self._held.connection = self._held.connection, None
            if held is not None:
                held.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction, on the thread's held connection if it holds one."""
        if not getattr(self._held, "holding", False):
            with self.database.engine.begin() as connection:
                yield connection
            return
        held: Connection | None = self._held.connection
        if held is None:
            held = self._held.connection = self.database.engine.connect()
        try:
            with held.begin():
                yield held
        except Exception as exc:
            self._held.connection = None
            lost = _broken(held)
            held.invalidate()
            held.close()
            if lost:
                raise LostConnection(str(exc)) from exc
            raise

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, submissions: Sequence[Submission], now: int) -> list[IngestResult]:
        """Store the events of several requests in one transaction (a group commit)."""
        for submission in submissions:
            self._tenants[submission.project.id] = submission.project.name
        return self._ingest(submissions, now)

    @_retrying
    def _ingest(self, submissions: Sequence[Submission], now: int) -> list[IngestResult]:
        self._queued = 0
        self._written = {}
        with self._transaction() as connection:
            results = self._write(connection, submissions, now)
        self._committed()
        self._announced()
        return results

    def _committed(self) -> None:
        """Keep the states of the rooms the committed transaction wrote."""
        cache = self._rooms
        cache.update(self._written)
        self._written = {}
        while len(cache) > ROOM_CACHE:
            del cache[next(iter(cache))]

    def _announced(self) -> None:
        if self._queued:
            self._queued = 0
            self.queued.set()

    def _write(
        self, connection: Connection, submissions: Sequence[Submission], now: int
    ) -> list[IngestResult]:
        results = [IngestResult(0, 0, []) for _ in submissions]
        if any(submission.chats for submission in submissions):
            self._write_chats(connection, submissions, results, now)
        # First occurrence of each (project, id) in this group; later ones compare with it.
        first: dict[tuple[int, str], tuple[int, int, PresenceEvent]] = {}
        repeats: list[tuple[int, int, PresenceEvent]] = []
        latest = now + self.settings.max_skew
        for n, submission in enumerate(submissions):
            pid = submission.project.id
            for index, event in submission.events:
                if event.at > latest:
                    results[n].rejected.append(
                        Rejected(index, "`at` is further in the future than the server allows")
                    )
                    continue
                key = (pid, event.id)
                if key in first:
                    repeats.append((n, index, event))
                else:
                    first[key] = (n, index, event)
        for n, submission in enumerate(submissions):
            if submission.room_ends or submission.snapshots:
                for index, event in self._resolve(connection, submission, first):
                    if event.at > latest:
                        results[n].rejected.append(
                            Rejected(
                                index,
                                "the room's end is further in the future than the server allows",
                            )
                        )
                    else:
                        first.setdefault((submission.project.id, event.id), (n, index, event))
        if not first:
            return results
        rows = [
            (
                pid,
                eid,
                event.room,
                1 if event.type == JOINED else 0,
                event.participant_id,
                event.user_id,
                event.user_name,
                event.at,
                now,
            )
            for (pid, eid), (_, _, event) in sorted(first.items(), key=lambda kv: kv[0])
        ]
        inserted, existing = self._append(connection, rows, list(first))
        fresh: defaultdict[tuple[int, str], list[Stamped]] = defaultdict(list)
        for key, (n, index, event) in first.items():
            if key in inserted:
                results[n].accepted += 1
                fresh[(key[0], event.room)].append(stamp(event))
            elif existing.get(key) == _content(event) or (
                key in existing and submissions[n].id_is_identity
            ):
                results[n].duplicates += 1
            else:
                results[n].rejected.append(_conflict(index, event))
        for n, index, event in repeats:
            _, _, kept = first[(submissions[n].project.id, event.id)]
            if _content(kept) == _content(event) or submissions[n].id_is_identity:
                results[n].duplicates += 1
            else:
                results[n].rejected.append(_conflict(index, event))
        for result in results:
            result.rejected.sort(key=lambda r: r.index)
        # Who listens, per project: read once for this transaction's meeting and participant events.
        subs = {pid: self._subscribers(connection, pid) for pid in sorted({p for p, _ in inserted})}
        self._update_rooms(connection, fresh, now, subs)
        self._announce_participants(connection, first, inserted, now, subs)
        return results

    def _append(
        self, connection: Connection, rows: list[tuple[Any, ...]], keys: list[tuple[int, str]]
    ) -> tuple[set[tuple[int, str]], dict[tuple[int, str], tuple[Any, ...]]]:
        """Append the event `rows` (of `keys`) whose ids are new to the log.

        Returns the keys appended and the content stored under the others. SQLite (one
        writer at a time) looks the ids up, then appends the rest with one driver
        `executemany`; PostgreSQL appends all the rows in one statement over arrays, which
        answers which ones went in, and only then looks up the others.
        """
        sql = self._sql
        if not sql.sqlite:
            inserted = {
                (pid, eid) for pid, eid in statements.rows(connection, sql.append, _columns(rows))
            }
            return inserted, self._existing(connection, [k for k in keys if k not in inserted])
        existing = self._existing(connection, keys)
        new = [row for row in rows if (row[0], row[1]) not in existing]
        if new:
            written = statements.run_many(connection, sql.append, new)
            if written != len(new):  # only another writer could have, and SQLite has one
                raise ConcurrentAppend(f"{len(new) - written} of {len(new)} ids were taken")
        return {(row[0], row[1]) for row in new}, existing

    def _write_chats(
        self,
        connection: Connection,
        submissions: Sequence[Submission],
        results: list[IngestResult],
        now: int,
    ) -> None:
        """Append the chat messages to their log, with the same duplicate rules as events."""
        latest = now + self.settings.max_skew
        first: dict[tuple[int, str], tuple[int, int, ChatMessage]] = {}
        repeats: list[tuple[int, int, ChatMessage]] = []
        for n, submission in enumerate(submissions):
            for index, message in submission.chats:
                if message.at > latest:
                    results[n].rejected.append(
                        Rejected(index, "`at` is further in the future than the server allows")
                    )
                elif (submission.project.id, message.id) in first:
                    repeats.append((n, index, message))
                else:
                    first[(submission.project.id, message.id)] = (n, index, message)
        if not first:
            return
        rows = [
            {"project_id": pid, "received_at": now, **message._asdict()}
            for (pid, _), (_, _, message) in sorted(first.items(), key=lambda kv: kv[0])
        ]
        statement = (
            self._insert(chat_messages)
            .on_conflict_do_nothing(index_elements=["project_id", "id"])
            .returning(chat_messages.c.project_id, chat_messages.c.id)
        )
        inserted = {(r[0], r[1]) for r in connection.execute(statement, rows)}
        existing: dict[tuple[int, str], tuple[Any, ...]] = {}
        for pid, eid in first.keys() - inserted:
            row = connection.execute(
                select(*(chat_messages.c[f] for f in ChatMessage._fields)).where(
                    chat_messages.c.project_id == pid, chat_messages.c.id == eid
                )
            ).first()
            if row is not None:
                existing[(pid, eid)] = tuple(row)
        for key, (n, index, message) in first.items():
            if key in inserted:
                results[n].accepted += 1
            elif existing.get(key) == tuple(message):
                results[n].duplicates += 1
            else:
                results[n].rejected.append(_conflict(index, message))
        for n, index, message in repeats:
            if first[(submissions[n].project.id, message.id)][2] == message:
                results[n].duplicates += 1
            else:
                results[n].rejected.append(_conflict(index, message))

    # -- room ends and snapshots ----------------------------------------------------------

    def _resolve(
        self,
        connection: Connection,
        submission: Submission,
        pending: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
    ) -> list[tuple[int, PresenceEvent]]:
        """The events that `submission`'s room ends and snapshots stand for."""
        pid = submission.project.id
        made: list[tuple[int, PresenceEvent]] = []
        for index, end in submission.room_ends:
            present = self._present_at(connection, pid, end.room, end.at, pending)
            for person, (user_id, user_name) in sorted(present.items()):
                eid = derived_id(end.id, person)
                made.append(
                    (index, PresenceEvent(eid, LEFT, end.room, person, end.at, user_id, user_name))
                )
        for index, snap in submission.snapshots:
            present = self._present_at(connection, pid, snap.room, snap.at, pending)
            listed = {person: (uid, name) for person, uid, name in snap.people}
            for person in sorted(set(present) | set(listed)):
                if (person in present) == (person in listed):
                    continue
                kind: EventType = LEFT if person in present else JOINED
                uid, name = present.get(person) or listed[person]
                eid = derived_id("snapshot", snap.room, str(snap.at), person, kind)
                made.append(
                    (index, PresenceEvent(eid, kind, snap.room, person, snap.at, uid, name))
                )
            self._sighted(connection, pid, snap)
        return made

    def _present_at(
        self,
        connection: Connection,
        project_id: int,
        room: str,
        at: int,
        pending: dict[tuple[int, str], tuple[int, int, PresenceEvent]],
    ) -> dict[str, tuple[str | None, str | None]]:
        """Who is present in `room` just before `at` (SESSION-RULES step 1, over the log
        since `LOOKBACK` and the events waiting in this transaction)."""
        query = select(
            events.c.at,
            events.c.joined,
            events.c.participant_id,
            events.c.user_id,
            events.c.user_name,
        ).where(
            events.c.project_id == project_id,
            events.c.room == room,
            events.c.at >= at - LOOKBACK,
            events.c.at < at,
        )
        walk: list[Stamped] = [
            (when * 2 + joined, person, uid, name)
            for when, joined, person, uid, name in connection.execute(query)
        ]
        walk += [
            stamp(e)
            for (p, _), (_, _, e) in pending.items()
            if p == project_id and e.room == room and e.at < at
        ]
        walk.sort(key=lambda s: s[0])
        present: dict[str, tuple[str | None, str | None]] = {}
        for mark, person, uid, name in walk:
            if mark & 1:
                present.setdefault(person, (uid, name))
            else:
                present.pop(person, None)
        return present

    def _sighted(self, connection: Connection, project_id: int, snap: Snapshot) -> None:
        if not snap.people:
            return
        statement = self._insert(sightings)
        statement = statement.on_conflict_do_update(
            index_elements=["project_id", "room", "participant_id"],
            set_={
                "seen_at": case(
                    (sightings.c.seen_at > statement.excluded.seen_at, sightings.c.seen_at),
                    else_=statement.excluded.seen_at,
                )
            },
        )
        rows = [
            {"project_id": project_id, "room": snap.room, "participant_id": p, "seen_at": snap.at}
            for p in sorted({person for person, _, _ in snap.people})
        ]
        connection.execute(statement, rows)

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
                self._queued += outbox.queue(
                    connection, self.database.sqlite, subs[pid], items, now
                )

    def _existing(
        self, connection: Connection, keys: list[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[Any, ...]]:
        """The content stored under those of `keys` already in the event log."""
        found: dict[tuple[int, str], tuple[Any, ...]] = {}
        by_project: defaultdict[int, list[str]] = defaultdict(list)
        for pid, eid in keys:
            by_project[pid].append(eid)
        sql = self._sql
        for pid, ids in by_project.items():
            for row in statements.rows(connection, sql.existing_keyed, (sql.keys(ids), pid)):
                found[(pid, row[0])] = (row[1], bool(row[2]), *row[3:])
        return found

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
            for name, blob in statements.rows(
                connection, sql.states_keyed, (sql.keys(stale), project_id)
            ):
                found[name] = room_state.load_room(name, blob, rules, tenant)
        return found

    def _update_rooms(
        self,
        connection: Connection,
        fresh: dict[tuple[int, str], list[Stamped]],
        now: int,
        subs: dict[int, list[outbox.Subscriber]],
    ) -> None:
        by_project: defaultdict[int, list[str]] = defaultdict(list)
        for pid, name in fresh:
            by_project[pid].append(name)
        for pid in sorted(by_project):
            names = sorted(by_project[pid])
            versions = self._lock_rooms(connection, pid, names)
            states = self._states(connection, pid, versions)
            writes = {
                name: self._advance(connection, pid, name, states[name], fresh[(pid, name)], now)
                for name in names
            }
            self._apply(connection, pid, writes, versions, now, subs[pid])

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
    ) -> room_state.RoomWrite:
        checkpoint = state.room.checkpoint.at
        if checkpoint is not None:
            now = max(now, checkpoint)
        try:
            return room_state.advance(project_id, state, new, now, self.settings.late_window)
        except LateEvent as late:
            log.info(
                "room %r of project %r: an event %.3f s before its checkpoint; rebuilding it"
                " from the event log",
                name,
                self._tenant(connection, project_id),
                (late.checkpoint - late.at) / MICROS,
            )
            return self._rebuilt(connection, project_id, name, now)

    def _rebuilt(
        self, connection: Connection, project_id: int, name: str, now: int
    ) -> room_state.RoomWrite:
        query = (
            select(
                events.c.at,
                events.c.joined,
                events.c.participant_id,
                events.c.user_id,
                events.c.user_name,
            )
            .where(events.c.project_id == project_id, events.c.room == name)
            .order_by(events.c.at)
        )
        log_events: list[Stamped] = [
            (at * 2 + joined, pid, uid, uname)
            for at, joined, pid, uid, uname in connection.execute(query)
        ]
        return room_state.rebuilt(
            project_id,
            name,
            self.settings.rules,
            self._tenant(connection, project_id),
            log_events,
            now,
            self.settings.late_window,
        )

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
        replaced = [name for name, w in writes.items() if w.replace_all]
        for name in replaced:
            connection.execute(
                delete(sessions).where(sessions.c.project_id == project_id, sessions.c.room == name)
            )
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
                self._queued += outbox.queue(connection, self.database.sqlite, subs, items, now)
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
        for name, w in writes.items():
            self._written[(project_id, name)] = (versions[name] + 1, w.after)

    # -- time -----------------------------------------------------------------------------

    def tick(self, now: int, limit: int = 200) -> int:
        """Apply what the passage of time changed in rooms due by `now`; how many rooms."""
        return self._tick(now, limit)

    @_retrying
    def _tick(self, now: int, limit: int) -> int:
        self._queued = 0
        self._written = {}
        with self._transaction() as connection:
            query = (
                select(rooms.c.project_id, rooms.c.name, rooms.c.version)
                .where(rooms.c.due_at <= now)
                .order_by(rooms.c.project_id, rooms.c.name)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            due: defaultdict[int, dict[str, int]] = defaultdict(dict)
            for pid, name, version in connection.execute(query):
                due[pid][name] = version
            for pid, versions in due.items():
                states = self._states(connection, pid, versions)
                writes = {
                    name: self._advance(connection, pid, name, state, [], now)
                    for name, state in states.items()
                }
                subs = self._subscribers(connection, pid)
                self._apply(connection, pid, writes, versions, now, subs)
        self._committed()
        self._announced()
        return sum(len(s) for s in due.values())

    def close_stale(self, now: int, stale_after: int) -> int:
        """End every presence with no event and no snapshot for `stale_after`, at the last
        time it was seen (its join, or the latest snapshot listing it); how many."""
        cutoff = now - stale_after
        closing: defaultdict[int, list[tuple[int, PresenceEvent]]] = defaultdict(list)
        with self.database.engine.connect() as connection:
            occupied = connection.execute(
                select(rooms.c.project_id, rooms.c.name, rooms.c.presence).where(
                    rooms.c.occupancy > 0
                )
            ).all()
            for pid, name, blob in occupied:
                _, people = room_state.decode_presence(blob)
                seen = {
                    person: at
                    for person, at in connection.execute(
                        select(sightings.c.participant_id, sightings.c.seen_at).where(
                            sightings.c.project_id == pid, sightings.c.room == name
                        )
                    )
                }
                for person, join, user_id, user_name in people:
                    last = max(join, seen.get(person, join))
                    if last > cutoff:
                        continue
                    log.info(
                        "closing the presence of %r in room %r of project %r at its last"
                        " sighting, %.0f s ago: no event or snapshot since",
                        person,
                        name,
                        self._tenant(connection, pid),
                        (now - last) / MICROS,
                    )
                    eid = derived_id("stale", name, person, str(last))
                    event = PresenceEvent(eid, LEFT, name, person, last, user_id, user_name)
                    closing[pid].append((len(closing[pid]), event))
            submissions = [
                Submission(project_by_id(connection, pid), found) for pid, found in closing.items()
            ]
        if submissions:
            self.ingest(submissions, now)
        return sum(len(found) for found in closing.values())

    # -- rebuild --------------------------------------------------------------------------

    def rebuild(self, project: Project, now: int) -> int:
        """Recompute every room of `project` from its event log; how many rooms."""
        self._tenants[project.id] = project.name
        with self.database.engine.connect() as connection:
            names = [
                r[0]
                for r in connection.execute(
                    select(events.c.room).where(events.c.project_id == project.id).distinct()
                )
            ]
        for i in range(0, len(names), 50):
            self._rebuild_rooms(project.id, sorted(names[i : i + 50]), now)
        return len(names)

    @_retrying
    def _rebuild_rooms(self, project_id: int, names: list[str], now: int) -> None:
        self._written = {}
        with self._transaction() as connection:
            versions = self._lock_rooms(connection, project_id, names)
            for name in names:
                self._rooms.pop((project_id, name), None)
            writes = {name: self._rebuilt(connection, project_id, name, now) for name in names}
            # A rebuild announces nothing.
            self._apply(connection, project_id, writes, versions, now, [])
        self._committed()


def _broken(connection: Connection) -> bool:
    """Whether `connection` lost its database: SQLAlchemy saw it go, or the driver did (the
    write path's own statements run on the driver, out of SQLAlchemy's sight)."""
    if connection.invalidated:
        return True
    return bool(getattr(connection.connection.dbapi_connection, "closed", False))


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as one list per column (PostgreSQL arrays)."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def _conflict(index: int, event: PresenceEvent | ChatMessage) -> Rejected:
    return Rejected(index, f"id {event.id!r} is already used by a different event")
