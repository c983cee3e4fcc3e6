"""Chat messages and dashboard sign-ins.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("participant_id", sa.String(256), nullable=False),
        sa.Column("user_name", sa.String(1024), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
    )
    op.create_index("chat_by_room", "chat_messages", ["project_id", "room", "at"])
    op.create_table(
        "logins",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("logins")
    op.drop_index("chat_by_room", table_name="chat_messages")
    op.drop_table("chat_messages")
