"""The service's commands: `serve`, `keys`, `projects`, `providers`, `import`, `rebuild`,
`export`."""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from types import FrameType
from typing import IO, Final

import uvicorn
from sqlalchemy import make_url, select

from roomlog import logs
from roomlog.api.server import GuardedProtocol
from roomlog.cli import demo
from roomlog.cli.arguments import PROVIDER_OPTIONS
from roomlog.domain.events import MICROS, ChatMessage, PresenceEvent, RoomEvent
from roomlog.ingest.native import InvalidEvent, parse_item
from roomlog.ingest.videosdk import public_key
from roomlog.store.db import BadDatabaseUrl, Database, migrate, open_database
from roomlog.store.defaults import ENV_URL
from roomlog.store.projects import (
    DEFAULT_PROJECT,
    Project,
    UnknownKey,
    create_key,
    ensure_project,
    find_project,
    list_keys,
    project_count,
    revoke_key,
    set_person_key,
)
from roomlog.store.providers import list_credentials, masked, set_credentials
from roomlog.store.queries import SESSION_COLUMNS, MeetingFilter, meeting_pages
from roomlog.store.retention import DAY, prune
from roomlog.store.schema import sessions
from roomlog.store.store import Store
from roomlog.store.writes import IngestResult, Settings, Submission
from roomlog.views.exports import attendance_csv, people_csv, sessions_csv
from roomlog.workers import targets

IMPORT_CHUNK: Final = 5_000
EXIT_INVALID: Final = 2


def _micros() -> int:
    return time.time_ns() // 1000


def run(args: argparse.Namespace) -> int:
    try:
        database = open_database(args.database_url)
    except BadDatabaseUrl as exc:
        print(f"roomlog: {exc}", file=sys.stderr)
        return EXIT_INVALID
    command = _COMMANDS[args.command]
    try:
        migrate(database)
        return command(args, database)
    finally:
        database.dispose()


def _serve(args: argparse.Namespace, database: Database) -> int:
    with database.engine.begin() as connection:
        if project_count(connection) == 0:
            project, _ = ensure_project(connection, DEFAULT_PROJECT)
            key = create_key(connection, project)
            print(f"Created project {DEFAULT_PROJECT!r}. Its API key (shown only once):")
            print(key, flush=True)
    if args.demo:
        with database.engine.begin() as connection:
            project, _ = ensure_project(connection, DEFAULT_PROJECT)
        store = Store(database)
        now = _micros()
        events = demo.history(now)
        chats = list(enumerate(demo.chat(events), start=len(events)))
        results = store.ingest([Submission(project, list(enumerate(events)), chats=chats)], now)
        print(
            f"Demo history: {results[0].accepted} events stored, "
            f"{results[0].duplicates} already there.",
            flush=True,
        )
    os.environ[ENV_URL] = database.url
    os.environ["ROOMLOG_LATE_WINDOW"] = str(args.late_window)
    os.environ["ROOMLOG_MAX_SKEW"] = str(args.max_skew)
    os.environ["ROOMLOG_STALE_AFTER"] = str(args.stale_after)
    os.environ["ROOMLOG_WEBHOOK_RETRY_BASE"] = str(args.webhook_retry_base)
    os.environ["ROOMLOG_CHAT_LINK_TTL"] = str(args.chat_link_ttl)
    os.environ["ROOMLOG_WAIT"] = args.wait
    os.environ["ROOMLOG_PARTITIONS"] = str(args.partitions)
    os.environ["ROOMLOG_WRITERS"] = str(args.writers)
    os.environ["ROOMLOG_APPLY_THREADS"] = str(args.apply_threads)
    os.environ["ROOMLOG_APPLIERS"] = args.appliers
    os.environ[targets.ENV] = "1" if args.webhook_deny_private else ""
    os.environ["ROOMLOG_HEADER_TIMEOUT"] = str(args.header_timeout)
    os.environ["ROOMLOG_MAX_HEADER_BYTES"] = str(args.max_header_bytes)
    os.environ[logs.ENV_FORMAT] = args.log_format
    os.environ["ROOMLOG_ACCESS_LOG"] = "0" if args.no_access_log else "1"
    os.environ["ROOMLOG_PUBLIC_URL"] = args.public_url or ""
    if args.metrics_token is not None:
        os.environ["ROOMLOG_METRICS_TOKEN"] = args.metrics_token
    os.environ["ROOMLOG_RETENTION_DAYS"] = str(args.retention_days or "")
    print(f"roomlog on http://{args.host}:{args.port} (OpenAPI: /schema)", flush=True)
    # uvicorn answers SIGTERM by finishing what is under way, then raises the signal again
    # once it has shut down: exit 0 then, as a clean stop, rather than die of it.
    signal.signal(signal.SIGTERM, _terminated)
    uvicorn.run(
        "roomlog.api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=GuardedProtocol,
        timeout_keep_alive=max(1, round(args.keep_alive)),
        timeout_graceful_shutdown=max(1, round(args.shutdown_timeout)),
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level="warning",
    )
    return 0


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _keys(args: argparse.Namespace, database: Database) -> int:
    if args.keys_command == "create":
        with database.engine.begin() as connection:
            project, created = ensure_project(connection, args.project)
            key = create_key(connection, project)
        if created:
            print(f"Created project {project.name!r}.")
        print(f"A new API key for project {project.name!r} (shown only once):")
        print(key)
        return 0
    if args.keys_command == "list":
        with database.reader.connect() as connection:
            keys = list_keys(connection, args.project)
        print(f"{'KEY ID':<18} {'PROJECT':<20} {'CREATED':<22} REVOKED")
        for info in keys:
            print(
                f"{info.id:<18} {info.project:<20} {_when(info.created_at):<22} "
                f"{_when(info.revoked_at) if info.revoked_at else '-'}"
            )
        return 0
    try:
        with database.engine.begin() as connection:
            revoke_key(connection, args.key_id)
    except UnknownKey:
        print(f"roomlog keys revoke: no key {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"Revoked {args.key_id}.")
    return 0


def _when(micros: int | None) -> str:
    if micros is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(micros / MICROS))


def _existing_project(database: Database, name: str, command: str) -> Project | None:
    """The project called `name`, or None after saying on stderr that there is none."""
    with database.reader.connect() as connection:
        project = find_project(connection, name)
    if project is None:
        print(f"roomlog {command}: no project {name!r}", file=sys.stderr)
    return project


def _projects(args: argparse.Namespace, database: Database) -> int:
    project = _existing_project(database, args.project, f"projects {args.projects_command}")
    if project is None:
        return 1
    if args.projects_command == "set":
        with database.engine.begin() as connection:
            project = set_person_key(connection, project, args.person_key)
        print(f"project {project.name!r}: a person is now keyed by {project.person_key}")
        return 0
    print(f"project: {project.name}")
    print(f"apikey (the JWT claim for VideoSDK-style tokens): {project.public_id}")
    print(f"secret (signs those tokens, HS256): {project.secret}")
    print(f"person key (who a person is in attendance): {project.person_key}")
    return 0


def _providers(args: argparse.Namespace, database: Database) -> int:
    if args.providers_command == "list":
        with database.reader.connect() as connection:
            found = list_credentials(connection, args.project)
        print(f"{'PROJECT':<20} {'PROVIDER':<10} {'UPDATED':<22} CREDENTIALS")
        for entry in found:
            shown = " ".join(f"{k}={v}" for k, v in masked(entry.provider, entry.values).items())
            print(f"{entry.project:<20} {entry.provider:<10} {_when(entry.updated_at):<22} {shown}")
        return 0
    values: dict[str, str] = {}
    for option in PROVIDER_OPTIONS[args.provider]:
        given: str = getattr(args, option)
        if option == "public_key_file":
            try:
                with open(given, encoding="utf-8") as pem:
                    values["public_key"] = pem.read()
                public_key(values["public_key"])
            except (OSError, ValueError) as exc:
                print(f"roomlog providers set: {given}: {exc}", file=sys.stderr)
                return EXIT_INVALID
        elif not given.strip():
            print(f"roomlog providers set: --{option.replace('_', '-')} is empty", file=sys.stderr)
            return EXIT_INVALID
        else:
            values[option] = given.strip()
    with database.engine.begin() as connection:
        project, created = ensure_project(connection, args.project)
        set_credentials(connection, project.id, args.provider, values)
    if created:
        print(f"Created project {project.name!r}.")
    print(f"Set the {args.provider} credentials of project {project.name!r}.")
    return 0


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line


def _import(args: argparse.Namespace, database: Database) -> int:
    name = "<stdin>" if args.file == "-" else args.file
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, args.project)
    store = Store(database, Settings())
    total = IngestResult(0, 0, [])
    bad = 0
    chunk: list[tuple[int, PresenceEvent]] = []
    chats: list[tuple[int, ChatMessage]] = []
    room_events: list[tuple[int, RoomEvent]] = []

    def flush() -> None:
        nonlocal bad
        if not chunk and not chats and not room_events:
            return
        submission = Submission(project, chunk, chats=chats, room_events=room_events)
        result = store.ingest([submission], _micros())
        total.accepted += result[0].accepted
        total.duplicates += result[0].duplicates
        for rejected in result[0].rejected:
            print(f"{name}:{rejected.index}: {rejected.reason}", file=sys.stderr)
            bad += 1
        chunk.clear()
        chats.clear()
        room_events.clear()

    try:
        for number, line in _lines(args.file):
            try:
                item = parse_item(line)
            except InvalidEvent as exc:
                print(f"{name}:{number}: {exc}", file=sys.stderr)
                bad += 1
                continue
            if isinstance(item, ChatMessage):
                chats.append((number, item))
            elif isinstance(item, RoomEvent):
                room_events.append((number, item))
            else:
                chunk.append((number, item))
            if len(chunk) + len(chats) + len(room_events) >= IMPORT_CHUNK:
                flush()
        flush()
    except OSError as exc:
        print(f"roomlog import: {exc}", file=sys.stderr)
        return 1
    print(
        f"{total.accepted} event(s) stored, {total.duplicates} already there, {bad} rejected "
        f"(project {project.name!r})"
    )
    return EXIT_INVALID if bad else 0


def _rebuild(args: argparse.Namespace, database: Database) -> int:
    project = _existing_project(database, args.project, "rebuild")
    if project is None:
        return 1
    before = _fingerprints(database, project.id)
    rooms = Store(database).rebuild(project, _micros())
    after = _fingerprints(database, project.id)
    changed = sum(1 for sid in before.keys() | after.keys() if before.get(sid) != after.get(sid))
    print(f"Rebuilt {rooms} room(s) of project {project.name!r} from the event log.")
    print(
        f"{len(after)} session(s); {changed} differed from the stored ones"
        + (" (they were stored behind their events, or the rules changed)" if changed else "")
    )
    return 0


def _fingerprints(database: Database, project_id: int) -> dict[str, bytes]:
    """Each of the project's sessions, as a digest of everything stored about it."""
    found: dict[str, bytes] = {}
    query = select(*SESSION_COLUMNS).where(sessions.c.project_id == project_id)
    with database.reader.connect() as connection:
        for row in connection.execute(query):
            digest = hashlib.blake2b(repr(tuple(row[1:5])).encode(), digest_size=16)
            digest.update(row[5])
            found[row[0]] = digest.digest()
    return found


def _prune(args: argparse.Namespace, database: Database) -> int:
    retention = int(args.retention_days * DAY) if args.retention_days is not None else 0
    pruned = prune(Store(database), _micros(), retention, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    kept = "events, sessions and chat: all kept (no --retention-days)"
    if args.retention_days is not None:
        kept = f"rooms cut at their last settled instant before {args.retention_days:g} days ago"
        kept += f": {pruned.rooms}"
    print(f"{'TABLE':<16} {verb.upper()}")
    for table, count in pruned.rows.items():
        print(f"{table:<16} {count}")
    print(kept)
    return 0


def _backup(args: argparse.Namespace, database: Database) -> int:
    if not database.sqlite:
        print(
            "roomlog backup: copies a SQLite database; for PostgreSQL run\n"
            "  pg_dump --format=custom --file roomlog.dump 'postgresql://...'\n"
            "(docs/OPERATIONS.md: backup and restore)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    target = Path(args.file)
    if target.exists():
        print(f"roomlog backup: {target} exists; name a new file", file=sys.stderr)
        return 1
    source_path = make_url(database.url).database or ""
    try:
        with (
            closing(sqlite3.connect(source_path)) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
    except (OSError, sqlite3.Error) as exc:
        target.unlink(missing_ok=True)
        print(f"roomlog backup: {exc}", file=sys.stderr)
        return 1
    print(f"Copied {source_path} to {target} ({target.stat().st_size} bytes).")
    return 0


def _export(args: argparse.Namespace, database: Database) -> int:
    project = _existing_project(database, args.project, "export")
    if project is None:
        return 1
    where = MeetingFilter(
        room=args.room,
        start_from=args.timeframe_start,
        start_before=args.timeframe_end,
        ongoing=None if args.ongoing is None else args.ongoing == "true",
    )
    pages = meeting_pages(database, project.id, where)
    if args.what == "people":
        chunks = people_csv(pages, _micros(), by=project.person_key)
    else:
        write = sessions_csv if args.what == "sessions" else attendance_csv
        chunks = write(pages, _micros())
    try:
        if args.output in (None, "-"):
            sys.stdout.writelines(chunks)
            sys.stdout.flush()
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                out.writelines(chunks)
    except OSError as exc:
        print(f"roomlog export: {exc}", file=sys.stderr)
        return 1
    return 0


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Database], int]]] = {
    "serve": _serve,
    "keys": _keys,
    "projects": _projects,
    "providers": _providers,
    "import": _import,
    "rebuild": _rebuild,
    "export": _export,
    "prune": _prune,
    "backup": _backup,
}
