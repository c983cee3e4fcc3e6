"""The dashboard's Webhooks page: the project's webhooks, their state, and the latest delivery
attempts. Read-only: webhooks are made and changed through `/v1/webhooks`."""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

from anyio import to_thread
from litestar import Request, Response, get
from sqlalchemy import func, select

from roomlog.api import context
from roomlog.api.dashboard.render import html_page, zone_of
from roomlog.api.dashboard.signin import viewer
from roomlog.store.db import Database
from roomlog.store.schema import deliveries, outbox, webhooks

LATEST: Final = 50


class Hook(NamedTuple):
    id: str
    url: str
    state: str
    event_types: list[str]
    failed_count: int
    last_pushed: int | None
    created_at: int
    waiting: int  # events queued for it, not yet delivered


class Attempt(NamedTuple):
    webhook_id: str
    type: str
    attempt: int
    at: int
    status_code: int | None
    error: str | None
    duration_ms: int


def _read(database: Database, project_id: int) -> tuple[list[Hook], list[Attempt]]:
    with database.reader.connect() as connection:
        waiting = (
            select(func.count())
            .where(outbox.c.webhook_id == webhooks.c.id, outbox.c.status == "pending")
            .correlate(webhooks)
            .scalar_subquery()
        )
        hooks = [
            Hook(row[0], row[1], row[2], json.loads(row[3]), *row[4:])
            for row in connection.execute(
                select(
                    webhooks.c.id,
                    webhooks.c.url,
                    webhooks.c.state,
                    webhooks.c.event_types,
                    webhooks.c.failed_count,
                    webhooks.c.last_moment_pushed,
                    webhooks.c.created_at,
                    waiting,
                )
                .where(webhooks.c.project_id == project_id)
                .order_by(webhooks.c.created_at, webhooks.c.id)
            )
        ]
        attempts = [
            Attempt(*row)
            for row in connection.execute(
                select(
                    deliveries.c.webhook_id,
                    deliveries.c.type,
                    deliveries.c.attempt,
                    deliveries.c.at,
                    deliveries.c.status_code,
                    deliveries.c.error,
                    deliveries.c.duration_ms,
                )
                .where(deliveries.c.webhook_id.in_([h.id for h in hooks]))
                .order_by(deliveries.c.id.desc())
                .limit(LATEST)
            )
        ]
    return hooks, attempts


@get("/webhooks", include_in_schema=False)
async def webhooks_page(request: Request[Any, Any, Any]) -> Response[str]:
    project = await viewer(request)
    hooks, attempts = await to_thread.run_sync(
        _read, context.database(request.app.state), project.id
    )
    return html_page(
        "webhooks.html",
        project=project,
        section="webhooks",
        zone=zone_of(request),
        now=context.clock(request),
        hooks=hooks,
        urls={h.id: h.url for h in hooks},
        attempts=attempts,
        latest=LATEST,
    )


ROUTES: Final = (webhooks_page,)
