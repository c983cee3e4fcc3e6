"""Provider credentials, presence sightings, outbound webhooks, their outbox and deliveries.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "sightings",
        sa.Column("project_id", sa.Integer, primary_key=True),
        sa.Column("room", sa.String(256), primary_key=True),
        sa.Column("participant_id", sa.String(256), primary_key=True),
        sa.Column("seen_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("hmac", sa.String(256), nullable=False),
        sa.Column("basic_auth", sa.String(512), nullable=True),
        sa.Column("retry_type", sa.String(32), nullable=False),
        sa.Column("event_types", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failed_count", sa.Integer, nullable=False),
        sa.Column("last_moment_pushed", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("webhooks_by_project", "webhooks", ["project_id"])
    op.create_table(
        "outbox",
        sa.Column("webhook_id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    )
    op.create_index("outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("webhook_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("deliveries_by_webhook", "deliveries", ["webhook_id", "id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("outbox")
    op.drop_table("webhooks")
    op.drop_table("sightings")
    op.drop_table("provider_credentials")
