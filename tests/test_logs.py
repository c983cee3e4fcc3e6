"""Log lines: the text line's time (the server's local time to the millisecond), and the
access line written without a record of its own."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomlog.api import access
from roomlog.logs import BufferedHandler, JsonFormatter, TextFormatter, direct


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


@contextmanager
def only_buffered(formatter: logging.Formatter) -> Iterator[BufferedHandler]:
    """The root logger with one `BufferedHandler`, as `roomlog serve` configures it (pytest's
    own capturing handlers, which it adds as a test's body begins, set aside meanwhile)."""
    root = logging.getLogger()
    kept, level = root.handlers[:], root.level
    handler = BufferedHandler()
    handler.setFormatter(formatter)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        handler.close()
        root.handlers[:] = kept
        root.setLevel(level)


def _finish(monkeypatch: pytest.MonkeyPatch, entry: access.Access) -> None:
    monkeypatch.setattr(time, "perf_counter", lambda: 2.5)
    access.finish(entry, {"path_template": ""}, 2.4962, True)  # type: ignore[typeddict-item]


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_the_access_line_written_directly_is_the_line_logging_writes(
    formatter: type[TextFormatter | JsonFormatter],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry = access.Access("abc123", "POST", "/v1/events", 200, "default", 120, 44)
    with only_buffered(formatter()) as handler:
        assert direct(access.log) is not None
        _finish(monkeypatch, entry)
        access.log.addFilter(lambda record: True)  # a record is needed now: through logging
        try:
            assert direct(access.log) is None
            _finish(monkeypatch, entry)
        finally:
            access.log.filters.clear()
        handler.flush()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    if formatter is TextFormatter:  # the same but for the time, to the millisecond
        assert lines[0][23:] == lines[1][23:]
        assert lines[0][23:] == (
            " INFO roomlog.access: POST /v1/events 200 3.8 ms project=default bytes_in=120"
            " bytes_out=44 id=abc123"
        )
    else:
        first, second = (json.loads(line) for line in lines)
        assert first.pop("time")[:4] == second.pop("time")[:4]
        assert first == second
        assert first["duration_ms"] == 3.8 and first["bytes_out"] == 44


def test_a_record_is_made_whenever_something_else_would_see_it() -> None:
    with only_buffered(TextFormatter()) as handler:
        assert direct(access.log) is not None
        other = logging.StreamHandler()
        logging.getLogger().addHandler(other)  # a second handler (a test's capture, say)
        assert direct(access.log) is None
        logging.getLogger().removeHandler(other)
        logging.getLogger("roomlog").addHandler(other)  # one on the way up
        assert direct(access.log) is None
        logging.getLogger("roomlog").removeHandler(other)
        access.log.setLevel(logging.WARNING)  # the line is not wanted at all
        try:
            assert direct(access.log) is None
        finally:
            access.log.setLevel(logging.NOTSET)
        handler.setLevel(logging.WARNING)
        assert direct(access.log) is None
        handler.setLevel(logging.NOTSET)
        access.log.propagate = False
        try:
            assert direct(access.log) is None
        finally:
            access.log.propagate = True
        assert direct(access.log) is not None
