"""Query parameters shared by the list endpoints and their CSV exports."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from roomlog.domain.events import LATEST_AT

Limit = Annotated[
    int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100 (default 100)")
]
UnixTime = Annotated[int | None, QueryParameter(ge=0, le=LATEST_AT)]
