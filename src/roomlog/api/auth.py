"""Who is calling: an API key as `Authorization: Bearer KEY` on every route, or on the
VideoSDK-compatible routes also a VideoSDK-style JWT in `Authorization` without a scheme.

The JWT is HS256, signed with the project's secret, with the claims `apikey` (the project's
public id), `permissions` (a list) and `exp`. VideoSDK's version 2 tokens (`"version": 2`) may
also carry `roomId` (the token sees that room only), `participantId` and `roles`: `crawler`
is for the server API, and a token whose roles are only `rtc` is refused here, as VideoSDK
refuses it. Keys found valid are remembered for a few seconds per process, so a revoked key
stops working within `CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import jwt
from anyio import to_thread
from litestar import Request

from roomlog.api import access
from roomlog.api.errors import AUTH_HEADER, AUTHENTICATION, ApiError
from roomlog.store.db import Database
from roomlog.store.projects import Project, authenticate, project_by_public_id, refusal

CACHE_SECONDS: Final = 5.0
# Claims that VideoSDK reads only in tokens with `"version": 2`.
V2_CLAIMS: Final = ("roomId", "participantId", "roles")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling a VideoSDK-style route: the project, and the one room a version 2 token
    is scoped to (None: every room of the project)."""

    project: Project
    room: str | None = None


class Authenticator:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: dict[str, tuple[Project, float]] = {}

    def _lookup_key(self, key: str) -> Project | None:
        with self.database.reader.connect() as connection:
            return authenticate(connection, key)

    def _refusal(self, key: str) -> str:
        with self.database.reader.connect() as connection:
            return refusal(connection, key)

    def _lookup_public(self, public_id: str) -> Project | None:
        with self.database.reader.connect() as connection:
            return project_by_public_id(connection, public_id)

    async def key(self, key: str) -> Project:
        cached = self._known.get(key)
        if cached is not None and cached[1] > time.monotonic():
            access.name_project(cached[0].name)
            return cached[0]
        project = await to_thread.run_sync(self._lookup_key, key)
        if project is None:
            raise ApiError(401, AUTHENTICATION, await to_thread.run_sync(self._refusal, key))
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (project, time.monotonic() + CACHE_SECONDS)
        access.name_project(project.name)
        return project

    async def token(self, token: str) -> Caller:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise ApiError(401, AUTHENTICATION, "the token is not a valid JWT") from None
        public_id = unverified.get("apikey") if isinstance(unverified, dict) else None
        if not isinstance(public_id, str):
            raise ApiError(401, AUTHENTICATION, "the token has no `apikey` claim")
        project = await to_thread.run_sync(self._lookup_public, public_id)
        if project is None:
            raise ApiError(401, AUTHENTICATION, "the token's `apikey` names no project")
        try:
            claims = jwt.decode(
                token,
                project.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "apikey"]},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, AUTHENTICATION, "the token has expired") from None
        except jwt.PyJWTError as exc:
            raise ApiError(401, AUTHENTICATION, f"the token is not valid: {exc}") from None
        if not isinstance(claims.get("permissions", []), list):
            raise ApiError(401, AUTHENTICATION, "the token's `permissions` is not a list")
        access.name_project(project.name)
        return Caller(project, _scope(claims))


def _scope(claims: dict[str, Any]) -> str | None:
    """The room a token is scoped to, after checking its version 2 claims."""
    given = [name for name in V2_CLAIMS if name in claims]
    if given and claims.get("version") != 2:
        raise ApiError(
            401,
            AUTHENTICATION,
            f'the token\'s `{given[0]}` claim needs `"version": 2` in the token, as in VideoSDK',
        )
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ApiError(401, AUTHENTICATION, "the token's `roles` is not a list of strings")
    if roles and "crawler" not in roles:
        raise ApiError(
            401,
            AUTHENTICATION,
            "the token's roles do not allow the server API: give it the `crawler` role",
        )
    for name in ("roomId", "participantId"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ApiError(401, AUTHENTICATION, f"the token's `{name}` is not a string")
    room: str | None = claims.get("roomId")
    return room


def _header(request: Request[Any, Any, Any]) -> str:
    value = request.headers.get("authorization")
    if value is None or not value.strip():
        raise ApiError(400, AUTH_HEADER, "the Authorization header is missing")
    return value.strip()


def bearer(value: str) -> str | None:
    """The key of a `Bearer KEY` header value; None for anything else."""
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def daily_project(request: Request[Any, Any, Any]) -> Project:
    """The caller's project on Daily-style routes: `Authorization: Bearer KEY`."""
    value = _header(request)
    key = bearer(value)
    if key is None:
        raise ApiError(400, AUTH_HEADER, "the Authorization header must read `Bearer <API key>`")
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.key(key)


async def videosdk_caller(request: Request[Any, Any, Any]) -> Caller:
    """The caller on VideoSDK-style routes: a bearer key (every room of its project), or a
    JWT with no scheme (a version 2 token may name one room)."""
    value = _header(request)
    authenticator: Authenticator = request.app.state.authenticator
    key = bearer(value)
    if key is not None and key.startswith("eyJ") and key.count(".") == 2:
        raise ApiError(
            401,
            AUTHENTICATION,
            "VideoSDK's style sends a token with no `Bearer`: `Authorization: <token>`"
            " (`Bearer` is for roomlog API keys)",
        )
    if key is not None:
        return Caller(await authenticator.key(key))
    return await authenticator.token(value)


async def videosdk_project(request: Request[Any, Any, Any]) -> Project:
    """The caller's project on VideoSDK's v1 routes, which know no room scope: a token scoped
    to a room is refused there rather than shown every room."""
    caller = await videosdk_caller(request)
    if caller.room is not None:
        raise ApiError(
            401,
            AUTHENTICATION,
            "a token scoped to one room (`roomId`) works on the /v2 routes only",
        )
    return caller.project
