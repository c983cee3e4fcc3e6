"""Hypothesis profiles: `default` for every run, `thorough` (HYPOTHESIS_PROFILE=thorough) for a
long search before a release."""

from __future__ import annotations

import os

from hypothesis import settings

from tests.fixtures import (
    api,
    database,
    database_url,
    postgres_database,
    postgres_schema,
    postgres_url,
)

settings.register_profile("default", deadline=None, max_examples=300)
settings.register_profile("thorough", deadline=None, max_examples=5_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The service's fixtures (a database on SQLite and on PostgreSQL, an API over it), for every
# folder of tests that needs them.
__all__ = [
    "api",
    "database",
    "database_url",
    "postgres_database",
    "postgres_schema",
    "postgres_url",
]
