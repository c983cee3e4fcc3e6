"""How `roomlog serve` and its applier processes log: to stderr, as text or one JSON object
per line (`serve --log-format`), at `ROOMLOG_LOG_LEVEL` (default INFO)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any, Final, NamedTuple

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
    """`<local time>,<ms> LEVEL logger: message name=value ...`."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _time(self, created: float) -> str:
        # A line per request: the local time of its second is formatted once, not per line.
        second = int(created)
        if second != self._second:
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)),
            )
        return f"{self._stamp},{int((created - second) * 1000):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = self.line(
            record.created, record.levelname, record.name, record.getMessage(), _fields(record)
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line

    def line(
        self, created: float, level: str, name: str, message: str, fields: dict[str, Any]
    ) -> str:
        """A record's line from its parts: `format`'s, and the access log's (`direct`)."""
        line = f"{self._time(created)} {level} {name}: {message}"
        if fields:  # after the message, e.g. `POST /v1/events 200 3.1 ms project=default`
            shown = (f"{k}={v}" for k, v in fields.items() if v is not None and k not in IN_MESSAGE)
            line += " " + " ".join(shown)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC), `level`, `logger`, `message` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            _fields(record),
            exception,
        )

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        fields: dict[str, Any],
        exception: str | None = None,
    ) -> str:
        """A record's line from its parts: `format`'s, and the access log's (`direct`)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(created % 1 * 1000):03d}Z",
            "level": level,
            "logger": name,
            "message": message,
            **fields,
        }
        if exception is not None:
            entry["exception"] = exception
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

    def write(self, line: str) -> None:
        """Add a line formatted elsewhere (`direct`), as `emit` adds a record's."""
        self.acquire()
        try:
            self._lines.append(line + "\n")
            self._size += len(line) + 1
            if self._size >= FLUSH_BYTES:
                self._due.set()
        finally:
            self.release()

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


class Direct(NamedTuple):
    """Where to write a logger's lines without making a record of each: its one handler."""

    handler: BufferedHandler
    formatter: TextFormatter | JsonFormatter


def direct(logger: logging.Logger, level: int = logging.INFO) -> Direct | None:
    """How to write `logger`'s lines at `level` straight to the process's handler, or None
    if a record is needed: the level is off, or something besides that one handler would see
    the record (another handler, a filter: a test capturing records, say).

    A line per request through `logging` costs about as much as the rest of a small request
    (docs/PERFORMANCE.md); formatted here, it is the same line for a fraction of that."""
    if logger.disabled or not logger.isEnabledFor(level):
        return None
    found: logging.Logger | None = logger
    while found is not None and found.parent is not None:  # up to the root
        if found.handlers or found.filters or not found.propagate:
            return None
        found = found.parent
    if found is None or found.filters or len(found.handlers) != 1:
        return None
    handler = found.handlers[0]
    if not isinstance(handler, BufferedHandler) or handler.filters or level < handler.level:
        return None
    formatter = handler.formatter
    if not isinstance(formatter, TextFormatter | JsonFormatter):
        return None
    return Direct(handler, formatter)


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
