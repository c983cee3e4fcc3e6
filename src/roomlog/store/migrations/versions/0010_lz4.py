"""PostgreSQL: the large values the appliers write and read on every turn (a partition's
pending events, a room's state and presence, a session's participants, a checkpoint) are
compressed with LZ4 instead of PostgreSQL's own pglz, where the server has LZ4 (PostgreSQL
14 and later, built with it). It compresses as well here for a fraction of the CPU time; values
written before stay as they were. Nothing changes on SQLite.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = (
    ("pending", "events"),
    ("rooms", "state"),
    ("rooms", "presence"),
    ("sessions", "participants"),
    ("checkpoints", "state"),
)


def _lz4() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    found = bind.exec_driver_sql(
        "SELECT count(*) FROM pg_settings"
        " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
    ).scalar_one()
    return bool(found)


def _compress(method: str) -> None:
    if _lz4():
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _compress("lz4")


def downgrade() -> None:
    _compress("pglz")
