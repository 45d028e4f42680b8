"""Gapless invoice numbers: a counter row instead of a sequence.

A sequence hands out a number even to an order whose transaction then rolls back (refused
for stock, a validation error), leaving gaps; many jurisdictions require consecutive
invoice numbers. The order's transaction now takes its number from the one row of
``invoice_counter`` (``UPDATE … RETURNING``), which rolls back with it. The counter
starts from the highest number already issued.

Revision ID: 0006_invoice_counter
Revises: 0005_ledger_reference_checks
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_invoice_counter"
down_revision: str | Sequence[str] | None = "0005_ledger_reference_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ISSUED = ("SELECT COALESCE(MAX(substring(number FROM 5)::bigint), 0) FROM orders "
           "WHERE number ~ '^INV-[0-9]{1,18}$'")


def upgrade() -> None:
    op.execute("""
        CREATE TABLE invoice_counter (
            id smallint PRIMARY KEY CONSTRAINT ck_invoice_counter_one_row CHECK (id = 1),
            last_number bigint NOT NULL CONSTRAINT ck_invoice_counter_last_number_nonnegative
                CHECK (last_number >= 0)
        )""")
    op.execute(f"INSERT INTO invoice_counter (id, last_number) VALUES (1, ({_ISSUED}))")
    op.execute("DROP SEQUENCE IF EXISTS order_number_seq")


def downgrade() -> None:
    op.execute("CREATE SEQUENCE order_number_seq")
    op.execute("SELECT setval('order_number_seq', last_number + 1, false) FROM invoice_counter")
    op.execute("DROP TABLE invoice_counter")
