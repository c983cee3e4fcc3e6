"""The floor for the ingest benchmark: the same framework and server, doing nothing.

`POST /hello` reads the body and answers a small JSON object, like `POST /v1/events` without
the work; served by uvicorn with uvloop and httptools, exactly as `roomlog serve` does.
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, Request, post


class Ok(msgspec.Struct):
    accepted: int


@post("/hello", status_code=200)
async def hello(request: Request) -> Ok:  # type: ignore[type-arg]
    await request.body()
    return Ok(1)


app = Litestar(route_handlers=[hello], openapi_config=None)
