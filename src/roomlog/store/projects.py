"""Projects and their API keys.

A key reads `rl_<id>_<secret>`: the id finds the row, the secret is checked against its
SHA-256. Keys carry 256 random bits, so a slow password hash would add nothing but latency.
Each project also has a public id and a signing secret for VideoSDK-style JWTs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Final, NamedTuple

from sqlalchemy import ColumnElement, Connection, insert, select, update

from roomlog.domain.people import PERSON_KEYS, PersonKey
from roomlog.store.defaults import DEFAULT_PROJECT
from roomlog.store.schema import api_keys, projects

__all__ = ["DEFAULT_PROJECT", "KeyInfo", "Project", "UnknownKey", "UnknownProject"]

KEY_PREFIX: Final = "rl"


class Project(NamedTuple):
    id: int
    name: str
    public_id: str
    secret: str
    person_key: PersonKey = "user_id"


class KeyInfo(NamedTuple):
    id: str
    project: str
    created_at: int
    revoked_at: int | None


class UnknownProject(LookupError):
    pass


class UnknownKey(LookupError):
    pass


def _now() -> int:
    return time.time_ns() // 1000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _project(connection: Connection, where: ColumnElement[bool]) -> Project | None:
    columns = (
        projects.c.id,
        projects.c.name,
        projects.c.public_id,
        projects.c.secret,
        projects.c.person_key,
    )
    row = connection.execute(select(*columns).where(where)).first()
    return None if row is None else Project(*row)


def find_project(connection: Connection, name: str) -> Project | None:
    return _project(connection, projects.c.name == name)


def project_by_id(connection: Connection, project_id: int) -> Project:
    found = _project(connection, projects.c.id == project_id)
    if found is None:
        raise UnknownProject(project_id)
    return found


def project_by_public_id(connection: Connection, public_id: str) -> Project | None:
    return _project(connection, projects.c.public_id == public_id)


def ensure_project(connection: Connection, name: str) -> tuple[Project, bool]:
    """The project called `name`, created if missing; the flag says whether it was created."""
    found = find_project(connection, name)
    if found is not None:
        return found, False
    public_id = f"pk_{secrets.token_hex(12)}"
    secret = secrets.token_urlsafe(32)
    connection.execute(
        insert(projects).values(name=name, public_id=public_id, secret=secret, created_at=_now())
    )
    created = find_project(connection, name)
    assert created is not None
    return created, True


def project_count(connection: Connection) -> int:
    return len(connection.execute(select(projects.c.id).limit(1)).all())


def create_key(connection: Connection, project: Project) -> str:
    """A new key for `project`; only its hash is stored, so this is the one time it is seen."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    connection.execute(
        insert(api_keys).values(
            id=key_id, project_id=project.id, secret_hash=_hash(secret), created_at=_now()
        )
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def list_keys(connection: Connection, project: str | None = None) -> list[KeyInfo]:
    query = (
        select(api_keys.c.id, projects.c.name, api_keys.c.created_at, api_keys.c.revoked_at)
        .join(projects, projects.c.id == api_keys.c.project_id)
        .order_by(projects.c.name, api_keys.c.created_at)
    )
    if project is not None:
        query = query.where(projects.c.name == project)
    return [KeyInfo(*row) for row in connection.execute(query)]


def revoke_key(connection: Connection, key_id: str) -> None:
    """Revoke a key by its id (the part after `rl_`); a revoked key stays listed."""
    if key_id.startswith(f"{KEY_PREFIX}_"):
        key_id = key_id.split("_")[1]
    result = connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    if result.rowcount == 0:
        known = connection.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
        if known is None:
            raise UnknownKey(key_id)


def authenticate(connection: Connection, key: str) -> Project | None:
    """The project `key` belongs to, or None for a malformed, unknown or revoked key."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    row = connection.execute(
        select(api_keys.c.project_id, api_keys.c.secret_hash).where(
            api_keys.c.id == parts[1], api_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(parts[2])):
        return None
    return project_by_id(connection, row.project_id)


def refusal(connection: Connection, key: str) -> str:
    """Why `key` does not authenticate, for its holder: a revoked key is told apart only
    when its secret is right."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return "the API key is not valid: roomlog keys read `rl_<id>_<secret>`"
    row = connection.execute(
        select(api_keys.c.secret_hash, api_keys.c.revoked_at).where(api_keys.c.id == parts[1])
    ).first()
    if (
        row is not None
        and row.revoked_at is not None
        and hmac.compare_digest(row.secret_hash, _hash(parts[2]))
    ):
        when = datetime.fromtimestamp(row.revoked_at / 1_000_000, UTC)
        return (
            f"the API key was revoked ({when:%Y-%m-%d %H:%M} UTC): use another key of the"
            " project, or make one with `roomlog keys create`"
        )
    return "the API key is not valid"


def set_person_key(connection: Connection, project: Project, key: PersonKey) -> Project:
    """Make `key` the person key of `project`; the project as it now is."""
    if key not in PERSON_KEYS:
        raise ValueError(f"a person key is one of {', '.join(PERSON_KEYS)}, not {key!r}")
    connection.execute(update(projects).where(projects.c.id == project.id).values(person_key=key))
    return project._replace(person_key=key)
