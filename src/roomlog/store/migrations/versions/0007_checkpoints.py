"""Each room's checkpoints: where a late event re-derives the room from, instead of from its
whole event log.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("project_id", sa.Integer(), primary_key=True),
        sa.Column("room", sa.String(256), primary_key=True),
        sa.Column("at", sa.BigInteger(), primary_key=True),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("settled", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
