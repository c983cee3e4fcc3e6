"""Room ends and snapshots are events of the log (SESSION-RULES step 1b): `events.people`
holds a snapshot's participants; such rows have `joined` 2 (a room end) or 3 (a snapshot).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("people", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("people")
