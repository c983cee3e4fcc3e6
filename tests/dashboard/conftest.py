"""The service's database fixtures: the dashboard runs on SQLite and on PostgreSQL alike."""

from tests.service.conftest import database, database_url

__all__ = ["database", "database_url"]
