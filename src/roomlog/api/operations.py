"""What operators' tools read: `GET /metrics` (Prometheus) and `GET /ready` (readiness).

`/health` says the process answers (liveness); `/ready` says it can do its work: its
database answers and its applier renews its partition leases (so it holds partitions, or
could take free ones). A load balancer or Kubernetes sends traffic by `/ready` and restarts
by `/health`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from anyio import to_thread
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from sqlalchemy import text

from roomlog.api import scrape
from roomlog.api.auth import bearer
from roomlog.api.errors import AUTHENTICATION, ApiError, ErrorBody
from roomlog.store.db import Database
from roomlog.workers.applier import LEASE, Beat, Heartbeat

DATABASE_TIMEOUT: Final = 5.0


@dataclass
class Workings:
    """What readiness looks at, set by the app's lifespan."""

    # When the applier last claimed its leases (a multiprocessing.Value in process mode).
    beat: Beat = field(default_factory=Heartbeat)
    applier_process: Any = None  # the applier's process, when it has one


class Readiness(msgspec.Struct, omit_defaults=True):
    status: str
    reason: str | None = None


def _database_answers(database: Database) -> None:
    with database.reader.connect() as connection:
        connection.execute(text("SELECT 1"))


async def problem(state: State) -> str | None:
    """Why this process cannot do its work now, or None."""
    workings: Workings = state.workings
    try:
        await asyncio.wait_for(
            to_thread.run_sync(_database_answers, state.database, abandon_on_cancel=True),
            DATABASE_TIMEOUT,
        )
    except TimeoutError:
        return f"the database did not answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the database does not answer: {first}"
    child = workings.applier_process
    if child is not None and not child.is_alive():
        return f"the applier process has exited (code {child.exitcode}); restart the server"
    beat = float(workings.beat.value)
    if beat == 0.0:
        return "the applier has not claimed its partitions yet"
    silent = time.time() - beat
    if silent > LEASE:
        return (
            f"the applier has not renewed its partition leases for {silent:.0f} s; another "
            "server takes them over"
        )
    return None


@get(
    "/ready",
    summary="Readiness",
    description="200 when the database answers and this server's applier holds or can take "
    "partitions; 503 with the reason otherwise. `/health` is liveness.",
    tags=["service"],
    security=[],
    responses={503: ResponseSpec(Readiness, description="Not ready, and why")},
)
async def ready(request: Request[Any, Any, Any]) -> Response[Readiness]:
    reason = await problem(request.app.state)
    if reason is None:
        return Response(Readiness("ready"))
    return Response(Readiness("unavailable", reason), status_code=503)


@get(
    "/metrics",
    summary="Prometheus metrics",
    description="Prometheus' text format (docs/OPERATIONS.md lists the metrics). Open unless "
    "`serve --metrics-token` is set; then `Authorization: Bearer <token>`.",
    tags=["service"],
    security=[],
    sync_to_thread=True,
    media_type=scrape.CONTENT_TYPE,
    responses={401: ResponseSpec(ErrorBody, description="The metrics token is missing or wrong")},
)
def metrics_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    token: str | None = request.app.state.metrics_token
    if token:
        given = bearer(request.headers.get("authorization", "").strip()) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(
                401,
                AUTHENTICATION,
                "the metrics need `Authorization: Bearer <token>` with the server's "
                "--metrics-token",
            )
    return Response(scrape.exposition(request.app.state.database), media_type=scrape.CONTENT_TYPE)


ROUTES: Final = (ready, metrics_page)
