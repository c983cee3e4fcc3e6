"""What operations read: the ongoing sessions (`roomlog_sessions_ongoing`, scraped every few
seconds) and the delivery log by time (pruned after 30 days).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ongoing = sa.text("end_at IS NULL")
    op.create_index(
        "sessions_ongoing",
        "sessions",
        ["project_id"],
        postgresql_where=ongoing,
        sqlite_where=ongoing,
    )
    op.create_index("deliveries_by_time", "deliveries", ["at"])


def downgrade() -> None:
    op.drop_index("deliveries_by_time", "deliveries")
    op.drop_index("sessions_ongoing", "sessions")
