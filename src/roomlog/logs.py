"""How `roomlog serve` and its applier processes log: to stderr, as text or one JSON object
per line (`serve --log-format`), at `ROOMLOG_LOG_LEVEL` (default INFO)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
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
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        # A line per request: the local time of its second is formatted once, not per line.
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)),
            )
        return f"{self._stamp},{int(record.msecs):03d}"

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


FLUSH_EVERY: Final = 0.2  # seconds an INFO line may wait to be written
FLUSH_BYTES: Final = 64 * 1024


class BufferedHandler(logging.Handler):
    """Formats each line where it is logged, and writes the lines to stderr together: every
    `FLUSH_EVERY` seconds (a thread of its own), as soon as `FLUSH_BYTES` are waiting or a
    warning or an error comes, and at exit. A line per request then costs its formatting,
    not a system call of its own nor a hand-over to another thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._size = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="roomlog-logs", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:  # under the handler's lock
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES or record.levelno >= logging.WARNING:
            self._due.set()

    def flush(self) -> None:
        self.acquire()  # one lock for both, so that lines go out in order
        try:
            if self._lines:
                lines, self._lines, self._size = self._lines, [], 0
                sys.stderr.write("".join(lines))
                sys.stderr.flush()
        finally:
            self.release()

    def _run(self) -> None:
        while not self._stopping:
            self._due.wait(FLUSH_EVERY)
            self._due.clear()
            self.flush()

    def close(self) -> None:
        self._stopping = True
        self._due.set()
        self.flush()
        super().close()


_handlers: list[BufferedHandler] = []


def close() -> None:
    """Write what is still waiting (at exit; a process that ends without running `atexit`,
    as a multiprocessing child does, calls it itself)."""
    while _handlers:
        _handlers.pop().close()


def configure() -> None:
    """Set up the process's logging from the environment `roomlog serve` sets."""
    chosen = os.environ.get(ENV_FORMAT, "text")
    handler = BufferedHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    _handlers.append(handler)
    atexit.register(close)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get(ENV_LEVEL, "INFO").upper())
    # No line says where in the code, which thread or which process it came from: skip
    # finding out (the logging HOWTO's "Optimization"; a line per request pays for each).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("alembic").setLevel(logging.WARNING)
