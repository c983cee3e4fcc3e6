"""Daily's error shape, `{"error": TYPE, "info": TEXT}`, for every error roomlog answers."""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from roomlog.api import access
from roomlog.ingest.native import unreadable

log = logging.getLogger("roomlog.api")

INVALID_REQUEST = "invalid-request-error"
AUTH_HEADER = "authorization-header-error"
AUTHENTICATION = "authentication-error"
NOT_FOUND = "not-found"


class ErrorBody(msgspec.Struct):
    """Daily's error body."""

    error: str
    info: str


class ApiError(Exception):
    def __init__(self, status: int, error: str, info: str, **extra: Any) -> None:
        super().__init__(info)
        self.status = status
        self.error = error
        self.info = info
        self.extra = extra


def error_body(error: str, info: str, **extra: Any) -> dict[str, Any]:
    """Daily's error body, with the request's id (`request_id`, as in the server's log)."""
    answering = access.current()
    if answering is not None:
        extra["request_id"] = answering.id
    return {"error": error, "info": info, **extra}


def on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return Response(error_body(exc.error, exc.info, **exc.extra), status_code=exc.status)


def on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for problem in problems:
        if isinstance(problem, dict):
            key = problem.get("key")
            message = problem.get("message", "invalid")
            parts.append(f"{key}: {message}" if key else str(message))
    info = "; ".join(parts) or str(exc.detail)
    return Response(error_body(INVALID_REQUEST, info), status_code=400)


_TYPES = {400: INVALID_REQUEST, 401: AUTHENTICATION, 404: NOT_FOUND}


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    error = _TYPES.get(status, "request-too-large" if status == 413 else "request-error")
    if status >= 500:
        error = "server-error"
    return Response(error_body(error, str(exc.detail)), status_code=status, headers=exc.headers)


def on_unreadable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A body Litestar's decoder could not read: not UTF-8, or nested too deeply."""
    return Response(error_body(INVALID_REQUEST, f"the body: {unreadable(exc)}"), status_code=400)


def unexpected(method: str, path: str) -> dict[str, Any]:
    """Log the error being handled, raised answering `method path`; the 500's body."""
    answering = access.current()
    log.exception(
        "unexpected error answering %s %s (request %s)",
        method,
        path,
        answering.id if answering is not None else "-",
    )
    return error_body("server-error", "an unexpected error; it has been logged")


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return Response(unexpected(request.method, request.url.path), status_code=500)


# The error answers every authenticated route may give, for its OpenAPI description.
ERRORS: Final = {
    400: ResponseSpec(ErrorBody, description="Invalid request or missing Authorization header"),
    401: ResponseSpec(ErrorBody, description="The API key or token is not valid"),
}
NOT_FOUND_ERRORS: Final = {
    404: ResponseSpec(ErrorBody, description="No such item in the caller's project")
}
