"""A room's held events in chunks of their own (`room_held`), out of the room's `state`, which
every write rewrites. A room whose state still holds its events inline moves them to a chunk
the next time it is written.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "room_held",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("room", sa.String(256), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("events", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # The rooms' states then lack the events held in chunks: `roomlog rebuild` derives them
    # again from the event log.
    op.drop_table("room_held")
