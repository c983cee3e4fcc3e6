"""Each project's person key: what makes the presences of one person in attendance reports
(`user_id`, or `user_name` for providers that send no user id).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "projects",
        sa.Column("person_key", sa.String(16), nullable=False, server_default="user_id"),
    )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("person_key")
