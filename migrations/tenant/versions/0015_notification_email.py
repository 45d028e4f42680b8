"""Where a tenant hears about its own account: ``notification_email`` in the settings
(an outgoing webhook endpoint disabled, for now).

Revision ID: 0015_notification_email
Revises: 0014_report_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_notification_email"
down_revision: str | Sequence[str] | None = "0014_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenant_settings", sa.Column("notification_email", sa.String(254)))


def downgrade() -> None:
    op.drop_column("tenant_settings", "notification_email")
