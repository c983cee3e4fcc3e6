"""How `roomlog serve` and its applier processes log: to stderr, as text or one JSON object
per line (`serve --log-format`), at `ROOMLOG_LOG_LEVEL` (default INFO)."""

from __future__ import annotations

import logging
import os
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


def configure() -> None:
    """Set up the process's logging from the environment `roomlog serve` sets."""
    chosen = os.environ.get(ENV_FORMAT, "text")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get(ENV_LEVEL, "INFO").upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
