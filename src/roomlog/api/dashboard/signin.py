"""Signing in and out of the dashboard, and who is signed in.

The `roomlog_session` cookie (HTTP-only, Secure, SameSite=Strict) holds a token from `logins`;
the API key itself never reaches the browser's storage. A POST whose `Origin` is another site
is refused.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery
from litestar.response import Redirect

from roomlog.api import context
from roomlog.api.dashboard import logins
from roomlog.api.dashboard.render import html_page
from roomlog.domain.events import MICROS
from roomlog.store.projects import Project

COOKIE: Final = "roomlog_session"
_LOOPBACK: Final = ("localhost", "127.0.0.1", "[::1]", "::1")


class SignInRequired(Exception):
    """No live sign-in: the browser is sent to the sign-in page."""


async def viewer(request: Request[Any, Any, Any]) -> Project:
    """The signed-in project, or `SignInRequired`."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired
    database = context.database(request.app.state)
    now = context.clock(request)

    def lookup() -> Project | None:
        with database.reader.connect() as connection:
            return logins.signed_in(connection, token, now)

    project = await to_thread.run_sync(lookup)
    if project is None:
        raise SignInRequired
    return project


def _local_path(value: str | None) -> str:
    """A path on this site to go back to after signing in; anything else goes to `/`."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def on_sign_in_required(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    if request.url.path == "/live":  # the live panel's refresh: no page to go back to
        return Response("", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response: Response[Any] = Redirect(f"/sign-in?{urlencode({'next': target})}")
    response.delete_cookie(COOKIE)
    return response


def _plain_http_elsewhere(request: Request[Any, Any, Any]) -> bool:
    """A browser keeps no Secure cookie from plain HTTP except on this machine."""
    return request.url.scheme == "http" and request.url.hostname not in _LOOPBACK


@get("/sign-in", sync_to_thread=False, include_in_schema=False)
def sign_in_page(
    request: Request[Any, Any, Any], next: FromQuery[str | None] = None
) -> Response[str]:
    return html_page(
        "sign_in.html",
        next=_local_path(next),
        error=None,
        insecure=_plain_http_elsewhere(request),
        project=None,
    )


@post("/sign-in", include_in_schema=False, status_code=303)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    target = _local_path(str(form.get("next") or "/"))
    if not _same_origin(request):
        return html_page(
            "sign_in.html",
            403,
            next=target,
            error="Sign in from this site's own page.",
            insecure=False,
            project=None,
        )
    key = str(form.get("key") or "")
    database = context.database(request.app.state)
    now = context.clock(request)

    def exchange() -> str | None:
        with database.engine.begin() as connection:
            return logins.sign_in(connection, key, now)

    token = await to_thread.run_sync(exchange) if key.strip() else None
    if token is None:
        return html_page(
            "sign_in.html",
            401,
            next=target,
            error="That API key is not valid. Keys look like rl_… and are printed by "
            "`roomlog keys create`.",
            insecure=_plain_http_elsewhere(request),
            project=None,
        )
    response: Response[Any] = Redirect(target, status_code=303)
    response.set_cookie(
        Cookie(
            key=COOKIE,
            value=token,
            path="/",
            max_age=logins.LIFETIME // MICROS,
            httponly=True,
            secure=True,
            samesite="strict",
        )
    )
    return response


@post("/sign-out", include_in_schema=False, status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    token = request.cookies.get(COOKIE)
    if token and _same_origin(request):
        database = context.database(request.app.state)

        def forget() -> None:
            with database.engine.begin() as connection:
                logins.sign_out(connection, token)

        await to_thread.run_sync(forget)
    response: Response[Any] = Redirect("/sign-in", status_code=303)
    response.delete_cookie(COOKIE)
    return response


ROUTES: Final = (sign_in_page, sign_in, sign_out)
