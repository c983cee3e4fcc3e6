"""Media-server providers: their credentials per project, and their receivers by name.

Credentials are kept as given (a receiver needs the secret itself to check an HMAC or a JWT);
`roomlog providers list` shows them masked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final, NamedTuple

from sqlalchemy import Connection, select

from roomlog.ingest import daily, jitsi, livekit, twilio, videosdk
from roomlog.ingest.webhook import Inbound, Mapped
from roomlog.store.schema import projects, provider_credentials


class Provider(NamedTuple):
    name: str
    # The credential fields, as `roomlog providers set` takes them (`api_key` → --api-key).
    fields: tuple[str, ...]
    # Fields shown masked by `roomlog providers list`.
    secret: frozenset[str]
    receive: Callable[[Inbound, dict[str, str]], Mapped]
    # A request the provider sends to check an endpoint before it signs anything: answered
    # 200 with the reason, storing nothing, whatever the credentials.
    probe: Callable[[Inbound], str | None] | None = None


PROVIDERS: Final = {
    p.name: p
    for p in (
        Provider("livekit", livekit.FIELDS, frozenset({"api_secret"}), livekit.receive),
        Provider("daily", daily.FIELDS, frozenset({"hmac"}), daily.receive, daily.probe),
        Provider("twilio", twilio.FIELDS, frozenset({"auth_token"}), twilio.receive),
        Provider("videosdk", videosdk.FIELDS, frozenset(), videosdk.receive),
        Provider("jitsi", jitsi.FIELDS, frozenset({"secret"}), jitsi.receive),
    )
}


class Credentials(NamedTuple):
    project: str
    provider: str
    values: dict[str, str]
    updated_at: int


def _now() -> int:
    return time.time_ns() // 1000


def set_credentials(
    connection: Connection, project_id: int, provider: str, values: dict[str, str]
) -> None:
    """Store (or replace) `provider`'s credentials for the project."""
    row = {
        "project_id": project_id,
        "provider": provider,
        "config": json.dumps(values, sort_keys=True),
        "updated_at": _now(),
    }
    table = provider_credentials
    existing = connection.execute(
        select(table.c.provider).where(
            table.c.project_id == project_id, table.c.provider == provider
        )
    ).first()
    if existing is None:
        connection.execute(table.insert().values(**row))
    else:
        connection.execute(
            table.update()
            .where(table.c.project_id == project_id, table.c.provider == provider)
            .values(config=row["config"], updated_at=row["updated_at"])
        )


def credentials(connection: Connection, project_id: int, provider: str) -> dict[str, str] | None:
    table = provider_credentials
    row = connection.execute(
        select(table.c.config).where(table.c.project_id == project_id, table.c.provider == provider)
    ).first()
    if row is None:
        return None
    values: dict[str, str] = json.loads(row[0])
    return values


def list_credentials(connection: Connection, project: str | None = None) -> list[Credentials]:
    table = provider_credentials
    query = (
        select(projects.c.name, table.c.provider, table.c.config, table.c.updated_at)
        .join(projects, projects.c.id == table.c.project_id)
        .order_by(projects.c.name, table.c.provider)
    )
    if project is not None:
        query = query.where(projects.c.name == project)
    return [
        Credentials(name, provider, json.loads(config), updated)
        for name, provider, config, updated in connection.execute(query)
    ]


def masked(provider: str, values: dict[str, str]) -> dict[str, str]:
    """`values` fit to print: secrets show only their last four characters."""
    secret = PROVIDERS[provider].secret
    shown: dict[str, str] = {}
    for name, value in values.items():
        if name in secret:
            shown[name] = "****" + value[-4:] if len(value) > 8 else "****"
        elif "\n" in value:
            shown[name] = value.strip().splitlines()[1][:16] + "…"
        else:
            shown[name] = value
    return shown
