"""Who is calling: an API key as `Authorization: Bearer KEY` on every route, or on the
VideoSDK-compatible routes also a VideoSDK-style JWT in `Authorization` without a scheme.

The JWT is HS256, signed with the project's secret, with the claims `apikey` (the project's
public id), `permissions` (a list) and `exp`. Keys found valid are remembered for a few
seconds per process, so a revoked key stops working within `CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from typing import Any, Final

import jwt
from anyio import to_thread
from litestar import Request

from roomlog.api.errors import AUTH_HEADER, AUTHENTICATION, ApiError
from roomlog.store.db import Database
from roomlog.store.projects import Project, authenticate, project_by_public_id

CACHE_SECONDS: Final = 5.0


class Authenticator:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: dict[str, tuple[Project, float]] = {}

    def _lookup_key(self, key: str) -> Project | None:
        with self.database.engine.connect() as connection:
            return authenticate(connection, key)

    def _lookup_public(self, public_id: str) -> Project | None:
        with self.database.engine.connect() as connection:
            return project_by_public_id(connection, public_id)

    async def key(self, key: str) -> Project:
        cached = self._known.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        project = await to_thread.run_sync(self._lookup_key, key)
        if project is None:
            raise ApiError(401, AUTHENTICATION, "the API key is not valid")
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (project, time.monotonic() + CACHE_SECONDS)
        return project

    async def token(self, token: str) -> Project:
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
        return project


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


async def videosdk_project(request: Request[Any, Any, Any]) -> Project:
    """The caller's project on VideoSDK-style routes: a bearer key, or a JWT with no scheme."""
    value = _header(request)
    authenticator: Authenticator = request.app.state.authenticator
    key = bearer(value)
    if key is not None:
        return await authenticator.key(key)
    return await authenticator.token(value)
