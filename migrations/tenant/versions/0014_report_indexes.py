"""Revenue reports (T17) read one table: each paid order carries the provider that paid
it, that capture's fee and what lost disputes cost it (beside ``amount_refunded``), and
one covering index on ``paid_at`` answers a period's totals by an index-only scan. The
tenant's operating costs (a monthly amount in a currency) are a setting.

Revision ID: 0014_report_indexes
Revises: 0013_referrals
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_report_indexes"
down_revision: str | Sequence[str] | None = "0013_referrals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("paid_provider", sa.String(32)))
    op.add_column("orders", sa.Column("provider_fee", sa.BigInteger()))
    op.add_column("orders", sa.Column("dispute_losses", sa.BigInteger(), nullable=False,
                                      server_default="0"))
    op.execute("ALTER TABLE orders ADD CONSTRAINT ck_orders_report_amounts_nonneg CHECK "
               "(dispute_losses >= 0 AND (provider_fee IS NULL OR provider_fee >= 0))")
    # orders paid before this revision: their succeeded attempt and lost disputes
    op.execute("""
        UPDATE orders o SET paid_provider = p.provider, provider_fee = p.fee_amount
        FROM payments p WHERE p.order_id = o.id AND p.status = 'succeeded'
    """)
    op.execute("""
        UPDATE orders o SET dispute_losses = l.amount
        FROM (SELECT t.order_id, SUM(e.debit - e.credit) AS amount
              FROM ledger_transactions t
              JOIN ledger_entries e ON e.transaction_id = t.id
              JOIN ledger_accounts a ON a.id = e.account_id AND a.code = 'dispute_losses'
              WHERE t.order_id IS NOT NULL GROUP BY t.order_id) l
        WHERE o.id = l.order_id
    """)
    op.execute("""
        CREATE INDEX ix_orders_paid_report ON orders (paid_at)
        INCLUDE (currency, paid_provider, total, discount, tax, amount_refunded,
                 provider_fee, dispute_losses)
        WHERE paid_at IS NOT NULL
    """)
    op.add_column("tenant_settings", sa.Column(
        "operating_costs_monthly", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("tenant_settings", sa.Column("operating_costs_currency", sa.String(3)))
    op.execute("ALTER TABLE tenant_settings ADD CONSTRAINT ck_tenant_settings_operating_costs "
               "CHECK (operating_costs_monthly >= 0 AND (operating_costs_monthly = 0 "
               "OR operating_costs_currency IS NOT NULL))")


def downgrade() -> None:
    op.execute("ALTER TABLE tenant_settings DROP CONSTRAINT ck_tenant_settings_operating_costs")
    op.drop_column("tenant_settings", "operating_costs_currency")
    op.drop_column("tenant_settings", "operating_costs_monthly")
    op.execute("DROP INDEX ix_orders_paid_report")
    op.execute("ALTER TABLE orders DROP CONSTRAINT ck_orders_report_amounts_nonneg")
    op.drop_column("orders", "dispute_losses")
    op.drop_column("orders", "provider_fee")
    op.drop_column("orders", "paid_provider")
