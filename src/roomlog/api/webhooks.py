"""Daily-compatible webhooks: `/v1/webhooks` to create, read, update and delete them, and
`/v1/webhooks/{uuid}/deliveries` for what was sent.

A new webhook (or a new URL) is checked first: roomlog POSTs `{"test": "test"}` to it, signed,
and refuses the webhook unless the endpoint answers 200. Updating a webhook also re-activates
one that went `FAILED`, and what waited in its outbox is sent at once.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from typing import Annotated, Any, Final

import aiohttp
import msgspec
from anyio import to_thread
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, QueryParameter
from msgspec import UNSET, UnsetType
from sqlalchemy import Connection, func, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update

from roomlog.api import context
from roomlog.api.errors import INVALID_REQUEST, NOT_FOUND, ApiError, ErrorBody
from roomlog.domain.events import rfc3339
from roomlog.store.outbox import SENT_TYPES
from roomlog.store.projects import Project
from roomlog.store.schema import deliveries, outbox, webhooks
from roomlog.workers import targets
from roomlog.workers.delivery import CIRCUIT_BREAKER, EXPONENTIAL, signed_headers

# Daily's event types: any may be subscribed to, so Daily clients work unchanged; roomlog
# sends the four of SENT_TYPES.
DAILY_TYPES: Final = frozenset(
    {
        "recording.ready-to-download", "recording.started", "recording.error",
        "streaming.started", "streaming.updated", "streaming.ended", "streaming.error",
        "meeting.started", "meeting.ended", "participant.joined", "participant.left",
        "waiting-participant.joined", "waiting-participant.left",
        "batch-processor.job-finished", "batch-processor.error",
        "dialout.connected", "dialout.error", "dialout.stopped", "dialout.warning",
        "dialout.answered", "dialin.ready", "dialin.connected", "dialin.error",
        "dialin.stopped", "dialin.warning", "transcript.ready-to-download",
        "transcript.started", "transcript.error", "calltransfer.triggered",
        "calltransfer.initiated", "calltransfer.answered", "calltransfer.completed",
    }
)  # fmt: skip
RetryType = Annotated[str, msgspec.Meta(pattern=f"^({CIRCUIT_BREAKER}|{EXPONENTIAL})$")]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
BasicAuth = Annotated[str, msgspec.Meta(max_length=512)]
MAX_SECRET: Final = 256
VERIFY_TIMEOUT: Final = 10.0


class WebhookObject(msgspec.Struct):
    """Daily's webhook object."""

    uuid: str
    url: str
    hmac: str
    basicAuth: str | None  # noqa: N815 - Daily's field names
    retryType: str  # noqa: N815
    eventTypes: list[str]  # noqa: N815
    state: str
    failedCount: int  # noqa: N815
    lastMomentPushed: str | None  # noqa: N815
    domainId: str  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815


class NewWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    eventTypes: list[str] | UnsetType = UNSET  # noqa: N815
    hmac: str | UnsetType = UNSET
    basicAuth: BasicAuth | UnsetType = UNSET  # noqa: N815
    retryType: RetryType = CIRCUIT_BREAKER  # noqa: N815


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | UnsetType = UNSET
    eventTypes: list[str] | UnsetType = UNSET  # noqa: N815
    hmac: str | UnsetType = UNSET
    basicAuth: BasicAuth | UnsetType = UNSET  # noqa: N815
    retryType: RetryType | UnsetType = UNSET  # noqa: N815


class Deleted(msgspec.Struct):
    deleted: bool
    uuid: str


class Delivery(msgspec.Struct):
    event_id: str
    type: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryList(msgspec.Struct):
    total_count: int
    data: list[Delivery]


_COLUMNS: Final = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.hmac,
    webhooks.c.basic_auth,
    webhooks.c.retry_type,
    webhooks.c.event_types,
    webhooks.c.state,
    webhooks.c.failed_count,
    webhooks.c.last_moment_pushed,
    webhooks.c.created_at,
    webhooks.c.updated_at,
)


def _object(project: Project, row: Any) -> WebhookObject:
    pushed = row.last_moment_pushed
    return WebhookObject(
        uuid=row.id,
        url=row.url,
        hmac=row.hmac,
        basicAuth=row.basic_auth,
        retryType=row.retry_type,
        eventTypes=json.loads(row.event_types),
        state=row.state,
        failedCount=row.failed_count,
        lastMomentPushed=None if pushed is None else rfc3339(pushed),
        domainId=project.public_id,
        createdAt=rfc3339(row.created_at),
        updatedAt=rfc3339(row.updated_at),
    )


def _row(connection: Connection, project: Project, webhook_id: str) -> Any:
    row = connection.execute(
        select(*_COLUMNS).where(webhooks.c.project_id == project.id, webhooks.c.id == webhook_id)
    ).first()
    if row is None:
        raise ApiError(404, NOT_FOUND, f"no webhook {webhook_id!r}")
    return row


def _event_types(given: list[str] | UnsetType) -> list[str]:
    if isinstance(given, UnsetType):
        return list(SENT_TYPES)
    unknown = sorted(set(given) - DAILY_TYPES)
    if unknown:
        raise ApiError(400, INVALID_REQUEST, f"eventTypes: unknown event types {unknown}")
    if not given:
        raise ApiError(400, INVALID_REQUEST, "eventTypes: subscribe to at least one event type")
    return sorted(set(given))


def _hmac(given: str | UnsetType) -> str:
    if isinstance(given, UnsetType):
        return base64.b64encode(secrets.token_bytes(32)).decode()
    try:
        if not base64.b64decode(given, validate=True) or len(given) > MAX_SECRET:
            raise ValueError(given)
    except ValueError:  # binascii.Error too
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"hmac: a base64-encoded secret of at most {MAX_SECRET} characters",
        ) from None
    return given


def _refuse_nul(data: NewWebhook | WebhookUpdate) -> None:
    """NUL cannot be stored (docs/API.md, "Strings"): name the field that holds one."""
    for field in ("url", "hmac", "basicAuth"):
        value = getattr(data, field)
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(400, INVALID_REQUEST, f"{field}: contains U+0000 (NUL)")


async def _verify_endpoint(url: str, secret: str, basic_auth: str | None, now: int) -> None:
    if not url.startswith(("http://", "https://")):
        raise ApiError(400, INVALID_REQUEST, "url: an http:// or https:// URL")
    try:
        targets.check_url(url)
    except targets.PrivateTarget as exc:
        raise ApiError(400, INVALID_REQUEST, f"url: {exc}; {_PRIVATE}") from None
    body = b'{"test":"test"}'
    headers = signed_headers(secret, body, now, basic_auth)
    timeout = aiohttp.ClientTimeout(total=VERIFY_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(connector=targets.connector(), timeout=timeout) as client,
            client.post(url, data=body, headers=headers) as answer,
        ):
            status = answer.status
    except TimeoutError:
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"url: the verification request had no answer within {VERIFY_TIMEOUT:.0f} s",
        ) from None
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        # Never the error's text: it would tell the caller about hosts and ports it tried.
        private = targets.deny_private() and "public address" in str(exc)
        reason = _PRIVATE if private else "check that the URL is reachable from the server"
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"url: the verification request failed: connection failed; {reason}",
        ) from None
    if status != 200:
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"url: the endpoint answered {status} to the verification request"
            ' {"test":"test"}; it must answer 200',
        )


_PRIVATE = "this server delivers webhooks to public addresses only (--webhook-deny-private)"
_ERRORS = {
    400: ResponseSpec(ErrorBody, description="Invalid request"),
    401: ResponseSpec(ErrorBody, description="The API key is not valid"),
}
_NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No such webhook in this project")}


@post(
    "/v1/webhooks",
    summary="Create a webhook",
    description=(
        'roomlog first POSTs `{"test":"test"}` to `url` and refuses the webhook unless it '
        "answers 200. Without `hmac`, a secret is generated; without `eventTypes`, the webhook "
        "gets every event roomlog sends: " + ", ".join(f"`{t}`" for t in SENT_TYPES) + "."
    ),
    status_code=200,
    responses=_ERRORS,
    tags=["webhooks"],
)
async def create_webhook(
    request: Request[Any, Any, Any],
    project: NamedDependency[Project],
    data: Annotated[NewWebhook, Body(title="NewWebhook")],
) -> WebhookObject:
    now = context.clock(request)
    _refuse_nul(data)
    types = _event_types(data.eventTypes)
    secret = _hmac(data.hmac)
    basic = None if isinstance(data.basicAuth, UnsetType) else data.basicAuth
    await _verify_endpoint(data.url, secret, basic, now)
    webhook_id = str(uuid.uuid4())

    def store() -> WebhookObject:
        with context.database(request.app.state).engine.begin() as connection:
            connection.execute(
                webhooks.insert().values(
                    id=webhook_id,
                    project_id=project.id,
                    url=data.url,
                    hmac=secret,
                    basic_auth=basic,
                    retry_type=data.retryType,
                    event_types=json.dumps(types),
                    state="ACTIVE",
                    failed_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return _object(project, _row(connection, project, webhook_id))

    return await to_thread.run_sync(store)


@get("/v1/webhooks", summary="List webhooks", responses=_ERRORS, tags=["webhooks"])
async def list_webhooks(
    request: Request[Any, Any, Any], project: NamedDependency[Project]
) -> list[WebhookObject]:
    def read() -> list[WebhookObject]:
        with context.database(request.app.state).reader.connect() as connection:
            rows = connection.execute(
                select(*_COLUMNS)
                .where(webhooks.c.project_id == project.id)
                .order_by(webhooks.c.created_at, webhooks.c.id)
            )
            return [_object(project, row) for row in rows]

    return await to_thread.run_sync(read)


@get(
    "/v1/webhooks/{webhook_id:str}",
    summary="One webhook",
    description="As Daily's published API describes it: an array holding the one webhook.",
    responses={**_ERRORS, **_NOT_FOUND},
    tags=["webhooks"],
)
async def get_webhook(
    request: Request[Any, Any, Any], project: NamedDependency[Project], webhook_id: FromPath[str]
) -> list[WebhookObject]:
    def read() -> list[WebhookObject]:
        with context.database(request.app.state).reader.connect() as connection:
            return [_object(project, _row(connection, project, webhook_id))]

    return await to_thread.run_sync(read)


@post(
    "/v1/webhooks/{webhook_id:str}",
    summary="Update a webhook, and re-activate it if it FAILED",
    description="A new `url` is verified as on create.",
    status_code=200,
    responses={**_ERRORS, **_NOT_FOUND},
    tags=["webhooks"],
)
async def update_webhook(
    request: Request[Any, Any, Any],
    project: NamedDependency[Project],
    webhook_id: FromPath[str],
    data: Annotated[WebhookUpdate, Body(title="WebhookUpdate")],
) -> WebhookObject:
    now = context.clock(request)
    _refuse_nul(data)

    def current() -> Any:
        with context.database(request.app.state).reader.connect() as connection:
            return _row(connection, project, webhook_id)

    row = await to_thread.run_sync(current)
    values: dict[str, Any] = {"state": "ACTIVE", "failed_count": 0, "updated_at": now}
    if not isinstance(data.eventTypes, UnsetType):
        values["event_types"] = json.dumps(_event_types(data.eventTypes))
    if not isinstance(data.hmac, UnsetType):
        values["hmac"] = _hmac(data.hmac)
    if not isinstance(data.basicAuth, UnsetType):
        values["basic_auth"] = data.basicAuth or None
    if not isinstance(data.retryType, UnsetType):
        values["retry_type"] = data.retryType
    if not isinstance(data.url, UnsetType) and data.url != row.url:
        secret = values.get("hmac", row.hmac)
        await _verify_endpoint(data.url, secret, values.get("basic_auth", row.basic_auth), now)
        values["url"] = data.url

    def store() -> WebhookObject:
        with context.database(request.app.state).engine.begin() as connection:
            connection.execute(
                sql_update(webhooks)
                .where(webhooks.c.project_id == project.id, webhooks.c.id == webhook_id)
                .values(**values)
            )
            connection.execute(
                sql_update(outbox)
                .where(outbox.c.webhook_id == webhook_id, outbox.c.status == "pending")
                .values(next_attempt_at=now)
            )
            return _object(project, _row(connection, project, webhook_id))

    updated = await to_thread.run_sync(store)
    request.app.state.store.queued.set()
    return updated


@delete(
    "/v1/webhooks/{webhook_id:str}",
    summary="Delete a webhook and what waits in its outbox",
    status_code=200,
    responses={**_ERRORS, **_NOT_FOUND},
    tags=["webhooks"],
)
async def delete_webhook(
    request: Request[Any, Any, Any], project: NamedDependency[Project], webhook_id: FromPath[str]
) -> Deleted:
    def remove() -> None:
        with context.database(request.app.state).engine.begin() as connection:
            _row(connection, project, webhook_id)
            connection.execute(sql_delete(outbox).where(outbox.c.webhook_id == webhook_id))
            connection.execute(sql_delete(deliveries).where(deliveries.c.webhook_id == webhook_id))
            connection.execute(sql_delete(webhooks).where(webhooks.c.id == webhook_id))

    await to_thread.run_sync(remove)
    return Deleted(True, webhook_id)


DeliveryLimit = Annotated[int, QueryParameter(ge=1, le=100, description="1 to 100 (default 100)")]


@get(
    "/v1/webhooks/{webhook_id:str}/deliveries",
    summary="The delivery attempts of a webhook, newest first",
    responses={**_ERRORS, **_NOT_FOUND},
    tags=["webhooks"],
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    project: NamedDependency[Project],
    webhook_id: FromPath[str],
    limit: DeliveryLimit = 100,
) -> DeliveryList:
    def read() -> DeliveryList:
        with context.database(request.app.state).reader.connect() as connection:
            _row(connection, project, webhook_id)
            scope = deliveries.c.webhook_id == webhook_id
            total = connection.execute(select(func.count()).where(scope)).scalar_one()
            rows = connection.execute(
                select(
                    deliveries.c.event_id,
                    deliveries.c.type,
                    deliveries.c.attempt,
                    deliveries.c.at,
                    deliveries.c.status_code,
                    deliveries.c.error,
                    deliveries.c.duration_ms,
                )
                .where(scope)
                .order_by(deliveries.c.id.desc())
                .limit(limit)
            )
            data = [
                Delivery(eid, kind, attempt, rfc3339(at), code, error, ms)
                for eid, kind, attempt, at, code, error, ms in rows
            ]
            return DeliveryList(total, data)

    return await to_thread.run_sync(read)


ROUTES: Final = (
    create_webhook,
    list_webhooks,
    get_webhook,
    update_webhook,
    delete_webhook,
    list_deliveries,
)
