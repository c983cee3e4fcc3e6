"""The floors for the ingest benchmark: the same server doing nothing, with and without
Litestar.

`POST /hello` reads the body and answers a small JSON object, like `POST /v1/events` without
the work; both are served by uvicorn with uvloop and httptools, exactly as `roomlog serve`
does. `app` is a Litestar route; `bare` is a plain ASGI callable, the floor for the requests
roomlog answers ahead of Litestar's request handling (`roomlog.api.app.Roomlog`).
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, Request, post
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send


class Ok(msgspec.Struct):
    accepted: int


@post("/hello", status_code=200)
async def hello(request: Request) -> Ok:  # type: ignore[type-arg]
    await request.body()
    return Ok(1)


app = Litestar(route_handlers=[hello], openapi_config=None)


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != ScopeType.HTTP:
        return
    more = True
    while more:
        message = await receive()
        more = message["type"] == "http.request" and message.get("more_body", False)
    body = msgspec.json.encode(Ok(1))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
