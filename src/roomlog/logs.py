"""How `roomlog serve` and its applier processes log: to stderr, as text or one JSON object
per line (`serve --log-format`), at `ROOMLOG_LOG_LEVEL` (default INFO)."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import time
from typing import Any, Final

import msgspec

ENV_FORMAT: Final = "ROOMLOG_LOG_FORMAT"
ENV_LEVEL: Final = "ROOMLOG_LOG_LEVEL"
FORMATS: Final = ("text", "json")
# The fields a record may carry in `extra={"fields": {...}}`: shown after the message as
# `name=value` in text, as keys of their own in JSON.
FIELDS: Final = "fields"
# Fields a text line's message already says (an access line's method, route and status).
IN_MESSAGE: Final = frozenset({"method", "route", "status", "duration_ms"})

_encode = msgspec.json.Encoder().encode


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = getattr(record, FIELDS, {})
    return found


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        extra = _fields(record)
        if extra:  # after the message, e.g. `POST /v1/events 200 3.1 ms project=default`
            shown = (f"{k}={v}" for k, v in extra.items() if v is not None and k not in IN_MESSAGE)
            line += " " + " ".join(shown)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(seconds % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


_listeners: list[logging.handlers.QueueListener] = []


def close() -> None:
    """Write what is still queued, and stop the writing thread (at exit; a process that
    ends without running `atexit`, as a multiprocessing child does, calls it itself)."""
    while _listeners:
        _listeners.pop().stop()


class _Handoff(logging.handlers.QueueHandler):
    """Hands records to the writing thread as they are: formatting and writing happen there,
    not in the request's thread (`QueueHandler` would format them here)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure() -> None:
    """Set up the process's logging from the environment `roomlog serve` sets. A thread of
    its own formats and writes the lines, so that a request pays only for handing its line
    over; what is still queued is written at exit."""
    chosen = os.environ.get(ENV_FORMAT, "text")
    writer = logging.StreamHandler()
    writer.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, writer)
    listener.start()
    _listeners.append(listener)
    atexit.register(close)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_Handoff(lines))
    root.setLevel(os.environ.get(ENV_LEVEL, "INFO").upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
