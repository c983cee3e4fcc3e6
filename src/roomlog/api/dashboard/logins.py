"""Dashboard sign-ins: an API key is exchanged for a random token kept in an HTTP-only cookie.

Only the token's SHA-256 is stored. A sign-in lasts `LIFETIME`, ends at sign-out, and ends as
soon as the API key it was made with is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from sqlalchemy import Connection, delete, insert, select

from roomlog.domain.events import MICROS
from roomlog.store.projects import Project, authenticate, project_by_id
from roomlog.store.schema import api_keys, logins

LIFETIME: Final = 12 * 3600 * MICROS


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(connection: Connection, key: str, now: int) -> str | None:
    """A new sign-in token for `key`'s project, or None when the key is not valid."""
    project = authenticate(connection, key.strip())
    if project is None:
        return None
    token = secrets.token_urlsafe(32)
    connection.execute(delete(logins).where(logins.c.expires_at <= now))
    connection.execute(
        insert(logins).values(
            token_hash=_hash(token),
            project_id=project.id,
            key_id=key.strip().split("_")[1],
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    return token


def signed_in(connection: Connection, token: str, now: int) -> Project | None:
    """The project of a live sign-in, or None."""
    row = connection.execute(
        select(logins.c.project_id)
        .join(api_keys, api_keys.c.id == logins.c.key_id)
        .where(
            logins.c.token_hash == _hash(token),
            logins.c.expires_at > now,
            api_keys.c.revoked_at.is_(None),
        )
    ).first()
    return None if row is None else project_by_id(connection, row[0])


def sign_out(connection: Connection, token: str) -> None:
    connection.execute(delete(logins).where(logins.c.token_hash == _hash(token)))
