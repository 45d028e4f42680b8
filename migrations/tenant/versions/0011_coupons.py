"""Coupons and their redemptions (T13).

``coupons``: a percent (1–100) or a fixed amount in one currency, codes unique per tenant
case-insensitively (an index on ``lower(code)``), an optional cap with its live counters
(``reserved``: unpaid orders holding a redemption; ``times_redeemed``: paid ones), an
optional provider-side discount it is linked to, and the state of that link's sync
(``provider_cap_baseline``, ``provider_synced``: see ``docs/coupons.md``).

``coupon_redemptions``: one per order (``order_id`` unique), ``reserved`` with the order,
``redeemed`` when it is paid, ``released`` when it is cancelled; with the provider sync's
record (status, action, attempts, the target written, the value read).

The order columns (``discount``, ``coupon_code``, ``original_amount``) exist since 0002.

Revision ID: 0011_coupons
Revises: 0010_payment_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_coupons"
down_revision: str | Sequence[str] | None = "0010_payment_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE coupons (
            id uuid NOT NULL CONSTRAINT pk_coupons PRIMARY KEY,
            code varchar(64) NOT NULL,
            percent_off smallint CONSTRAINT ck_coupons_percent_range
                CHECK (percent_off BETWEEN 1 AND 100),
            amount_off bigint CONSTRAINT ck_coupons_amount_positive CHECK (amount_off > 0),
            currency varchar(3),
            max_redemptions integer CONSTRAINT ck_coupons_max_positive
                CHECK (max_redemptions >= 1),
            times_redeemed integer NOT NULL DEFAULT 0,
            reserved integer NOT NULL DEFAULT 0,
            expires_at timestamptz,
            active boolean NOT NULL DEFAULT true,
            provider_discount_provider varchar(32),
            provider_discount_id varchar(200),
            provider_cap_baseline integer,
            provider_synced integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_coupons_one_kind CHECK (
                (percent_off IS NULL) <> (amount_off IS NULL)),
            CONSTRAINT ck_coupons_amount_currency CHECK (
                (amount_off IS NULL) = (currency IS NULL)),
            CONSTRAINT ck_coupons_counts_nonneg CHECK (
                times_redeemed >= 0 AND reserved >= 0 AND provider_synced >= 0),
            CONSTRAINT ck_coupons_provider_discount_whole CHECK (
                (provider_discount_provider IS NULL) = (provider_discount_id IS NULL))
        )""")
    op.execute("CREATE UNIQUE INDEX uq_coupons_code ON coupons (lower(code))")
    op.execute("CREATE INDEX ix_coupons_created_at ON coupons (created_at)")
    op.execute("""
        CREATE TABLE coupon_redemptions (
            id uuid NOT NULL CONSTRAINT pk_coupon_redemptions PRIMARY KEY,
            coupon_id uuid NOT NULL
                CONSTRAINT fk_coupon_redemptions_coupon_id_coupons REFERENCES coupons (id),
            order_id uuid NOT NULL
                CONSTRAINT fk_coupon_redemptions_order_id_orders REFERENCES orders (id)
                ON DELETE CASCADE
                CONSTRAINT uq_coupon_redemptions_order_id UNIQUE,
            status varchar(16) NOT NULL CONSTRAINT ck_coupon_redemptions_status_valid
                CHECK (status IN ('reserved', 'redeemed', 'released')),
            discount bigint NOT NULL CONSTRAINT ck_coupon_redemptions_discount_nonneg
                CHECK (discount >= 0),
            currency varchar(3) NOT NULL,
            provider varchar(32),
            redeemed_at timestamptz,
            released_at timestamptz,
            sync_status varchar(16) NOT NULL DEFAULT 'not_linked'
                CONSTRAINT ck_coupon_redemptions_sync_status_valid
                CHECK (sync_status IN ('not_linked', 'pending', 'done', 'failed')),
            sync_action varchar(24) CONSTRAINT ck_coupon_redemptions_sync_action_valid
                CHECK (sync_action IN ('decremented', 'deleted', 'already_deleted',
                                       'skipped_unlimited')),
            sync_attempts integer NOT NULL DEFAULT 0,
            sync_next_at timestamptz,
            sync_claimed_until timestamptz,
            sync_target integer,
            sync_seen integer,
            synced_at timestamptz,
            sync_last_error varchar(500),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX ix_coupon_redemptions_coupon_id "
               "ON coupon_redemptions (coupon_id, created_at)")
    op.execute("CREATE INDEX ix_coupon_redemptions_sync_due ON coupon_redemptions "
               "(sync_next_at) WHERE sync_status = 'pending'")


def downgrade() -> None:
    op.execute("DROP TABLE coupon_redemptions")
    op.execute("DROP TABLE coupons")
