"""Referral codes, referrers and commissions (T14); commission settings (T20).

``referrers``: one per referrer e-mail (stored lower-case), with the referred revenue in
US cents (paid minus refunded, over every code of the referrer) and the tier it gives.
Its row is the lock that serialises every recomputation (captures, refunds, lost
disputes), so concurrent payments never lose an update.

``referral_codes``: codes unique case-insensitively (an index on ``lower(code)``), the
buyer's discount (a whole percent 0–100), active or not.

``commissions``: one per paid order (``order_id`` unique), in the order currency and in
USD with the rate and source used, the tier and rate it was created with, and what the
order still counts in the referrer's revenue (``revenue_usd``, reduced by refunds).

``orders.referral_discount``: the part of ``discount`` the referral code gave (the rest is
the coupon's), posted as a discount when the order is paid.

``tenant_settings``: ``commission_tiers`` (JSON; null = the defaults) and
``commission_hold_days`` (default 14, 0 allowed).

Revision ID: 0013_referrals
Revises: 0012_outgoing_webhooks
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_referrals"
down_revision: str | Sequence[str] | None = "0012_outgoing_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE referrers (
            id uuid NOT NULL CONSTRAINT pk_referrers PRIMARY KEY,
            email varchar(254) NOT NULL CONSTRAINT uq_referrers_email UNIQUE,
            referred_revenue_usd bigint NOT NULL DEFAULT 0,
            tier varchar(32) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_referrers_email_lower CHECK (email = lower(email)),
            CONSTRAINT ck_referrers_revenue_nonneg CHECK (referred_revenue_usd >= 0)
        )""")
    op.execute("""
        CREATE TABLE referral_codes (
            id uuid NOT NULL CONSTRAINT pk_referral_codes PRIMARY KEY,
            code varchar(64) NOT NULL,
            referrer_id uuid NOT NULL
                CONSTRAINT fk_referral_codes_referrer_id_referrers REFERENCES referrers (id),
            discount_percent smallint NOT NULL
                CONSTRAINT ck_referral_codes_discount_range
                CHECK (discount_percent BETWEEN 0 AND 100),
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE UNIQUE INDEX uq_referral_codes_code ON referral_codes (lower(code))")
    op.execute("CREATE INDEX ix_referral_codes_referrer_id ON referral_codes (referrer_id)")
    op.execute("CREATE INDEX ix_referral_codes_created_at ON referral_codes (created_at)")
    op.execute("""
        CREATE TABLE commissions (
            id uuid NOT NULL CONSTRAINT pk_commissions PRIMARY KEY,
            order_id uuid NOT NULL
                CONSTRAINT fk_commissions_order_id_orders REFERENCES orders (id)
                ON DELETE CASCADE
                CONSTRAINT uq_commissions_order_id UNIQUE,
            payment_id uuid NOT NULL,
            referral_code_id uuid NOT NULL
                CONSTRAINT fk_commissions_referral_code_id_referral_codes
                REFERENCES referral_codes (id),
            referrer_id uuid NOT NULL
                CONSTRAINT fk_commissions_referrer_id_referrers REFERENCES referrers (id),
            referral_code varchar(64) NOT NULL,
            referrer_email varchar(254) NOT NULL,
            base_amount bigint NOT NULL,
            initial_amount bigint NOT NULL,
            amount bigint NOT NULL,
            currency varchar(3) NOT NULL,
            rate_percent numeric(5, 2) NOT NULL,
            tier varchar(32) NOT NULL,
            amount_usd bigint,
            base_amount_usd bigint,
            revenue_usd bigint NOT NULL DEFAULT 0,
            fx_rate numeric(22, 10),
            fx_source varchar(16),
            status varchar(16) NOT NULL,
            approved_at timestamptz,
            paid_at timestamptz,
            cancelled_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_commissions_status_valid
                CHECK (status IN ('pending', 'approved', 'paid', 'cancelled')),
            CONSTRAINT ck_commissions_amounts_nonneg CHECK (
                base_amount >= 0 AND amount >= 0 AND amount <= initial_amount
                AND revenue_usd >= 0),
            CONSTRAINT ck_commissions_rate_range CHECK (rate_percent BETWEEN 0 AND 100),
            CONSTRAINT ck_commissions_fx_whole CHECK ((fx_rate IS NULL) = (fx_source IS NULL))
        )""")
    op.execute("CREATE INDEX ix_commissions_status ON commissions (status, created_at)")
    op.execute("CREATE INDEX ix_commissions_referral_code_id ON commissions "
               "(referral_code_id, created_at)")
    op.execute("CREATE INDEX ix_commissions_created_at ON commissions (created_at)")
    op.execute("ALTER TABLE orders ADD COLUMN referral_discount bigint NOT NULL DEFAULT 0")
    op.execute("""
        ALTER TABLE tenant_settings
            ADD COLUMN commission_tiers jsonb,
            ADD COLUMN commission_hold_days integer NOT NULL DEFAULT 14
                CONSTRAINT ck_tenant_settings_hold_days_range
                CHECK (commission_hold_days BETWEEN 0 AND 3650)""")


def downgrade() -> None:
    op.execute("ALTER TABLE tenant_settings DROP COLUMN commission_hold_days, "
               "DROP COLUMN commission_tiers")
    op.execute("ALTER TABLE orders DROP COLUMN referral_discount")
    op.execute("DROP TABLE commissions")
    op.execute("DROP TABLE referral_codes")
    op.execute("DROP TABLE referrers")
