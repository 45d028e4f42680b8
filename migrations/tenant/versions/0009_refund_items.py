"""Refunds remember the items they return (``items``: ``[{order_item_id, quantity}]``), so
the stock comes back when the refund succeeds, which may be later than its request (a
provider's webhook, a manual refund marked refunded).

Revision ID: 0009_refund_items
Revises: 0008_entitlements
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_refund_items"
down_revision: str | Sequence[str] | None = "0008_entitlements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE refunds ADD COLUMN items jsonb NOT NULL DEFAULT '[]'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE refunds DROP COLUMN items")
