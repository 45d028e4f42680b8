"""Outgoing webhooks (T19, T24): the tenant's endpoints (secrets encrypted with its data
key), the events outbox written with the change that caused each event, and the delivery
log (one row per attempt).

Revision ID: 0012_outgoing_webhooks
Revises: 0011_coupons
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_outgoing_webhooks"
down_revision: str | Sequence[str] | None = "0011_coupons"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=40), nullable=True),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_enc", sa.LargeBinary(), nullable=True),
        sa.Column("previous_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "outgoing_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outgoing_events_dedupe_key")),
    )
    op.create_index("ix_outgoing_events_created_at", "outgoing_events", ["created_at"])
    op.create_table(
        "outgoing_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'exhausted')",
                           name=op.f("ck_outgoing_deliveries_status_valid")),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE",
                                name=op.f("fk_outgoing_deliveries_endpoint_id_webhook_endpoints")),
        sa.ForeignKeyConstraint(["event_id"], ["outgoing_events.id"], ondelete="CASCADE",
                                name=op.f("fk_outgoing_deliveries_event_id_outgoing_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_id", "attempt",
                            name=op.f("uq_outgoing_deliveries_event_id_endpoint_id_attempt")),
    )
    op.create_index("ix_outgoing_deliveries_endpoint", "outgoing_deliveries",
                    ["endpoint_id", "created_at"])
    op.create_index("ix_outgoing_deliveries_due", "outgoing_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_table("outgoing_deliveries")
    op.drop_table("outgoing_events")
    op.drop_table("webhook_endpoints")
