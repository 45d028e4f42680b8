"""Due deliveries per endpoint: a delivery's message claims the due ones waiting for the
same endpoint with it (tenant.outgoing.delivery, batches), read from this index.

Revision ID: 0016_outgoing_endpoint_due
Revises: 0015_notification_email
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_outgoing_endpoint_due"
down_revision: str | Sequence[str] | None = "0015_notification_email"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_outgoing_deliveries_endpoint_due ON outgoing_deliveries "
               "(endpoint_id, next_attempt_at) WHERE status = 'pending'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_outgoing_deliveries_endpoint_due")
