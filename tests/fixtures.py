"""Fixtures for the service: the same tests run on SQLite and on PostgreSQL.

PostgreSQL is taken from $ROOMLOG_TEST_POSTGRES_URL (default: the local server at
127.0.0.1:5432, database `test`); each test gets an empty schema of its own. Where no server
answers, the PostgreSQL variants skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from roomlog.api.app import create_app
from roomlog.domain.events import MICROS
from roomlog.domain.rules import Rules
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.projects import Project, create_key, ensure_project
from roomlog.store.store import Store
from roomlog.store.writes import Settings

POSTGRES_URL = os.environ.get(
    "ROOMLOG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# 2023-11-14T22:13:20Z: the instant the tests' histories are written around.
T0 = 1_700_000_000


def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}".strip()
    return None


_PROBLEM = _postgres_problem()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if _PROBLEM is not None:
        pytest.skip(_PROBLEM)
    return POSTGRES_URL


def fresh_postgres(base: str) -> str:
    """A URL whose connections see only a new, empty schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def drop_postgres(base: str, url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def blocked_by(holder: psycopg.Connection[Any]) -> bool:
    """Whether a session of the PostgreSQL server waits for a lock that `holder`'s session
    holds (asked on a connection of its own: `holder` may be inside a transaction, whose
    view of the server's activity stays as it first read it)."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (holder.info.backend_pid,),
        ).fetchone()
    return bool(found and found[0])


@contextmanager
def scratch_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database: `kind` "sqlite", a file in `folder`; "postgresql", a
    fresh schema, dropped afterwards (the test skips, saying why, if the server is not
    reachable)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'roomlog.db'}"
        return
    if _PROBLEM is not None:
        pytest.skip(_PROBLEM)
    url = fresh_postgres(POSTGRES_URL)
    try:
        yield url
    finally:
        drop_postgres(POSTGRES_URL, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with scratch_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_schema(tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema, migrated, dropped afterwards (the test skips,
    saying why, if the server is not reachable)."""
    with scratch_database("postgresql", tmp_path) as url:
        database = open_database(url)
        try:
            migrate(database)
        finally:
            database.dispose()
        yield url


@pytest.fixture
def postgres_database(postgres_schema: str) -> Iterator[Database]:
    """A `Database` on a fresh, migrated PostgreSQL schema."""
    database = open_database(postgres_schema)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    migrate(database)
    try:
        yield database
    finally:
        database.dispose()


class Clock:
    """The service's clock, moved by the tests."""

    def __init__(self, at: float = T0 + 3600) -> None:
        self.now = int(at * MICROS)

    def __call__(self) -> int:
        return self.now

    def set(self, seconds: float) -> None:
        self.now = int(seconds * MICROS)


# Rules as in production; tests that need the 10-minute rule move the clock.
RULES = Rules.seconds(min_presence=10, solo_start=30, solo_reset=600)


@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    database: Database
    clock: Clock
    project: Project
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def store(self) -> Store:
        store: Store = self.client.app.state.store
        return store

    def tick(self) -> None:
        while self.store.tick(self.clock()):
            pass


def make_project(database: Database, name: str) -> tuple[Project, str]:
    with database.engine.begin() as connection:
        project, _ = ensure_project(connection, name)
        return project, create_key(connection, project)


@pytest.fixture
def api(database: Database) -> Iterator[Api]:
    clock = Clock()
    project, key = make_project(database, "default")
    # The background tick runs rarely here; tests apply time with `Api.tick` instead.
    app = create_app(database, Settings(rules=RULES), clock=clock, tick=3600, wait="applied")
    with TestClient(app) as client:
        yield Api(client, database, clock, project, key)
