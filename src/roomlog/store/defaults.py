"""Names the command line shares with the store, kept apart so that importing them loads no
database driver (`roomlog sessionize` must start fast)."""

from __future__ import annotations

from typing import Final

ENV_URL: Final = "ROOMLOG_DATABASE_URL"
DEFAULT_URL: Final = "sqlite:///roomlog.db"
DEFAULT_PROJECT: Final = "default"
