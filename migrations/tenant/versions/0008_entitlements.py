"""Entitlements: one row per unit of a paid digital product (T15).

Unique per ``(order_item_id, unit)`` (a replayed capture grants nothing twice) and per
``license_key``; ``status`` is ``active``, ``suspended`` (a dispute is open) or
``revoked``. Orders paid before this revision grant nothing retroactively.

Revision ID: 0008_entitlements
Revises: 0007_refunds_disputes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_entitlements"
down_revision: str | Sequence[str] | None = "0007_refunds_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE entitlements (
            id uuid NOT NULL CONSTRAINT pk_entitlements PRIMARY KEY,
            order_id uuid NOT NULL
                CONSTRAINT fk_entitlements_order_id_orders REFERENCES orders (id),
            order_item_id uuid NOT NULL
                CONSTRAINT fk_entitlements_order_item_id_order_items REFERENCES order_items (id),
            unit integer NOT NULL CONSTRAINT ck_entitlements_unit_positive CHECK (unit >= 1),
            product_id uuid NOT NULL
                CONSTRAINT fk_entitlements_product_id_products REFERENCES products (id),
            customer_email varchar(254) NOT NULL,
            status varchar(16) NOT NULL CONSTRAINT ck_entitlements_status_valid
                CHECK (status IN ('active', 'suspended', 'revoked')),
            license_key varchar(80) NOT NULL
                CONSTRAINT uq_entitlements_license_key UNIQUE,
            granted_at timestamptz NOT NULL,
            revoked_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_entitlements_order_item_id_unit UNIQUE (order_item_id, unit)
        )""")
    op.execute("CREATE INDEX ix_entitlements_order_id ON entitlements (order_id)")
    op.execute("CREATE INDEX ix_entitlements_created_at ON entitlements (created_at)")
    op.execute("CREATE INDEX ix_entitlements_customer_email "
               "ON entitlements (lower(customer_email))")


def downgrade() -> None:
    op.execute("DROP TABLE entitlements")
