"""The text log line's time: the server's local time to the millisecond."""

from __future__ import annotations

import logging
import time

from hypothesis import given
from hypothesis import strategies as st

from roomlog.logs import TextFormatter


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("roomlog.access", logging.INFO, __file__, 1, "hi", None, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    return record


@given(st.lists(st.floats(min_value=0, max_value=4_000_000_000), min_size=1, max_size=20))
def test_a_line_starts_with_its_own_local_time(moments: list[float]) -> None:
    formatter = TextFormatter()  # one formatter for all: what it keeps of one line's second
    for created in sorted(moments) + moments:  # the same second again, and going back
        line = formatter.format(_record(created))
        second = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(created)))
        millis = int((created - int(created)) * 1000)
        assert line.startswith(f"{second},{millis:03d} INFO roomlog.access: hi")
