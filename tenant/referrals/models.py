"""Referrers, referral codes and commissions (tenant migration ``0013_referrals``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from core.limits import COUPON_LEN, CURRENCY_LEN, EMAIL_LEN, STATUS_LEN
from tenant.orders import models as _orders  # noqa: F401 - registers the FK target
from tenant.referrals.states import CommissionStatus

TIER_LEN = 32


class Referrer(IdMixin, TimestampMixin, TenantBase):
    """Whoever refers buyers, by e-mail (lower-case). Its row is the lock every
    recomputation of its revenue and tier takes (:mod:`tenant.referrals.effects`)."""

    __tablename__ = "referrers"

    email: Mapped[str] = mapped_column(String(EMAIL_LEN), unique=True)
    #: US cents: paid minus refunded, over every code of the referrer.
    referred_revenue_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    tier: Mapped[str] = mapped_column(String(TIER_LEN))

    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lower"),
        CheckConstraint("referred_revenue_usd >= 0", name="revenue_nonneg"),
    )


class ReferralCode(IdMixin, TimestampMixin, TenantBase):
    __tablename__ = "referral_codes"

    code: Mapped[str] = mapped_column(String(COUPON_LEN))
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrers.id"))
    #: The buyer's discount, a whole percent taken off what is left after any coupon.
    discount_percent: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
        Index("uq_referral_codes_code", text("lower(code)"), unique=True),
        Index("ix_referral_codes_referrer_id", "referrer_id"),
        Index("ix_referral_codes_created_at", "created_at"),
    )


class Commission(IdMixin, TimestampMixin, TenantBase):
    """A paid order's commission. ``tier`` and ``rate_percent`` are the ones it was
    created with; ``amount`` only ever goes down (refunds), from ``initial_amount``."""

    __tablename__ = "commissions"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    referral_code_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referral_codes.id"))
    referrer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrers.id"))
    referral_code: Mapped[str] = mapped_column(String(COUPON_LEN))
    referrer_email: Mapped[str] = mapped_column(String(EMAIL_LEN))
    #: What the buyer paid (the captured amount, order currency).
    base_amount: Mapped[int] = mapped_column(BigInteger)
    initial_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(CURRENCY_LEN))
    rate_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    tier: Mapped[str] = mapped_column(String(TIER_LEN))
    amount_usd: Mapped[int | None] = mapped_column(BigInteger)
    base_amount_usd: Mapped[int | None] = mapped_column(BigInteger)
    #: What this order counts now in the referrer's revenue (US cents).
    revenue_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Units of ``currency`` per 1 USD, and where the rate came from.
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(22, 10))
    fx_source: Mapped[str | None] = mapped_column(String(STATUS_LEN))
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default=CommissionStatus.PENDING)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'paid', 'cancelled')",
                        name="status_valid"),
        CheckConstraint("base_amount >= 0 AND amount >= 0 AND amount <= initial_amount "
                        "AND revenue_usd >= 0", name="amounts_nonneg"),
        CheckConstraint("rate_percent BETWEEN 0 AND 100", name="rate_range"),
        CheckConstraint("(fx_rate IS NULL) = (fx_source IS NULL)", name="fx_whole"),
        Index("ix_commissions_status", "status", "created_at"),
        Index("ix_commissions_referral_code_id", "referral_code_id", "created_at"),
        Index("ix_commissions_created_at", "created_at"),
    )
