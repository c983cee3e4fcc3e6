"""Reading one's writes: `?wait=applied`, and the `Roomlog-Applied-Through` header every
answer carries.

Events are acknowledged once appended to the log; their partition's applier applies them
within a second or so. A request with `wait=applied` (or every request, where the server
runs with `--wait applied`) has its events applied in the append's own transaction instead
(`Submission.apply_now`), so it is answered once they are. `Roomlog-Applied-Through` is an
instant (RFC 3339) such that every event acknowledged before it is reflected in the
sessions an answer reads.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from litestar.datastructures import MutableScopeHeaders, State
from litestar.types import Message, Scope

from roomlog.domain.events import rfc3339
from roomlog.workers.applier import Applier

HEADER: Final = "Roomlog-Applied-Through"
WAIT_VALUES: Final = ("applied", "logged")


def wants_wait(state: State, given: str | None) -> bool:
    """Whether a request's `wait` (or the server's default) asks for applied events."""
    chosen = given or state.get("wait", "logged")
    return bool(chosen == "applied")


async def applied_header(message: Message, scope: Scope) -> None:
    """Add `Roomlog-Applied-Through` to every HTTP answer of the app."""
    if message["type"] != "http.response.start":
        return
    through = header_value(scope["app"].state)
    if through is not None:
        MutableScopeHeaders.from_message(message)[HEADER] = through.decode()


def header_value(state: Any) -> bytes | None:
    """The header's value, once this process's applier has looked at the pending events."""
    applier: Applier | None = state.get("applier")
    if applier is None or not applier.checked_at:
        return None
    return _formatted(applier.applied_through())


@lru_cache(maxsize=4)
def _formatted(through: int) -> bytes:
    """`through` as the header says it: it moves once per applier round, while every answer
    carries it."""
    return rfc3339(through).encode()
