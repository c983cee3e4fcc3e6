"""Chat messages, dashboard sign-ins, and each session's closed participant time.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import msgspec
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


_BATCH = 1_000


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("attended", sa.BigInteger, nullable=False, server_default="0")
    )
    _fill_attended()
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


def _fill_attended() -> None:
    """The closed records' time of the sessions stored before: [pid, uid, name, join, leave]."""
    connection = op.get_bind()
    sessions = sa.table(
        "sessions",
        sa.column("project_id", sa.Integer),
        sa.column("id", sa.String),
        sa.column("participants", sa.LargeBinary),
        sa.column("attended", sa.BigInteger),
    )
    rows = connection.execute(
        sa.select(sessions.c.project_id, sessions.c.id, sessions.c.participants)
    ).all()
    update = (
        sa.update(sessions)
        .where(sessions.c.project_id == sa.bindparam("p"), sessions.c.id == sa.bindparam("i"))
        .values(attended=sa.bindparam("a"))
    )
    for n in range(0, len(rows), _BATCH):
        values = [
            {
                "p": project_id,
                "i": session_id,
                "a": sum(r[4] - r[3] for r in msgspec.msgpack.decode(blob) if r[4] is not None),
            }
            for project_id, session_id, blob in rows[n : n + _BATCH]
        ]
        connection.execute(update, values)


def downgrade() -> None:
    op.drop_column("sessions", "attended")
    op.drop_table("logins")
    op.drop_index("chat_by_room", table_name="chat_messages")
    op.drop_table("chat_messages")
