"""Apply behind the log: events waiting for their partition's applier (`pending`), the
partitions' leases (`partitions`), and the appliers alive (`appliers`).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.LargeBinary(), nullable=False),
        # Ids only grow, even past deleted rows: the applier takes rows in id order.
        sqlite_autoincrement=True,
    )
    op.create_index("pending_by_part", "pending", ["part", "id"])
    op.create_table(
        "partitions",
        sa.Column("part", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "appliers",
        sa.Column("holder", sa.String(64), primary_key=True),
        sa.Column("seen_until", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("appliers")
    op.drop_table("partitions")
    op.drop_index("pending_by_part", "pending")
    op.drop_table("pending")
