"""Projects, keys, the event log, rooms and sessions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("public_id", sa.String(64), nullable=False, unique=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("joined", sa.SmallInteger, nullable=False),
        sa.Column("participant_id", sa.String(256), nullable=False),
        sa.Column("user_id", sa.String(1024), nullable=True),
        sa.Column("user_name", sa.String(1024), nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    op.create_index("events_by_room", "events", ["project_id", "room", "at"])
    op.create_table(
        "rooms",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=True),
        sa.Column("occupancy", sa.Integer, nullable=False),
        sa.Column("presence", sa.LargeBinary, nullable=False),
        sa.Column("session_count", sa.Integer, nullable=False),
    )
    op.create_index("rooms_due", "rooms", ["due_at"])
    op.create_table(
        "sessions",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("start_at", sa.BigInteger, nullable=False),
        sa.Column("end_at", sa.BigInteger, nullable=True),
        sa.Column("max_participants", sa.Integer, nullable=False),
        sa.Column("participant_count", sa.Integer, nullable=False),
        sa.Column("participants", sa.LargeBinary, nullable=False),
    )
    op.create_index("sessions_newest", "sessions", ["project_id", "start_at", "room"])
    op.create_index("sessions_by_room", "sessions", ["project_id", "room", "start_at"])


def downgrade() -> None:
    for table in ("sessions", "rooms", "events", "api_keys", "projects"):
        op.drop_table(table)
