"""Coupons and redemptions (tenant migration ``0011_coupons``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from core.limits import COUPON_LEN, CURRENCY_LEN
from tenant.orders import models as _orders  # noqa: F401 - registers the FK target

PROVIDER_ID_LEN = 200


class Coupon(IdMixin, TimestampMixin, TenantBase):
    """A discount code. ``reserved`` + ``times_redeemed`` never exceed
    ``max_redemptions``: both move only in conditional statements (:mod:`.service`)."""

    __tablename__ = "coupons"

    code: Mapped[str] = mapped_column(String(COUPON_LEN))
    percent_off: Mapped[int | None] = mapped_column(SmallInteger)
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(CURRENCY_LEN))
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    provider_discount_provider: Mapped[str | None] = mapped_column(String(32))
    provider_discount_id: Mapped[str | None] = mapped_column(String(PROVIDER_ID_LEN))
    #: The provider discount's cap when the first sync read it (the shared budget).
    provider_cap_baseline: Mapped[int | None] = mapped_column(Integer)
    #: Redemptions given a sync target so far (the n-th gets ``baseline - n``).
    provider_synced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        CheckConstraint("percent_off BETWEEN 1 AND 100", name="percent_range"),
        CheckConstraint("amount_off > 0", name="amount_positive"),
        CheckConstraint("max_redemptions >= 1", name="max_positive"),
        CheckConstraint("(percent_off IS NULL) <> (amount_off IS NULL)", name="one_kind"),
        CheckConstraint("(amount_off IS NULL) = (currency IS NULL)", name="amount_currency"),
        CheckConstraint("times_redeemed >= 0 AND reserved >= 0 AND provider_synced >= 0",
                        name="counts_nonneg"),
        CheckConstraint("(provider_discount_provider IS NULL) = (provider_discount_id IS NULL)",
                        name="provider_discount_whole"),
        Index("uq_coupons_code", text("lower(code)"), unique=True),
        Index("ix_coupons_created_at", "created_at"),
    )


class CouponRedemption(IdMixin, TenantBase):
    """One order's use of a coupon, and the sync of the coupon's provider discount."""

    __tablename__ = "coupon_redemptions"

    coupon_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("coupons.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    discount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(CURRENCY_LEN))
    #: The provider that took the payment (set when redeemed).
    provider: Mapped[str | None] = mapped_column(String(32))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_status: Mapped[str] = mapped_column(String(16), default="not_linked",
                                             server_default="not_linked")
    sync_action: Mapped[str | None] = mapped_column(String(24))
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A try in progress holds the sync until then (a crashed try's hold lapses).
    sync_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The provider cap this redemption brings the discount to (its recorded intent).
    sync_target: Mapped[int | None] = mapped_column(Integer)
    #: The provider cap read when the intent was recorded.
    sync_seen: Mapped[int | None] = mapped_column(Integer)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('reserved', 'redeemed', 'released')", name="status_valid"),
        CheckConstraint("discount >= 0", name="discount_nonneg"),
        CheckConstraint("sync_status IN ('not_linked', 'pending', 'done', 'failed')",
                        name="sync_status_valid"),
        Index("ix_coupon_redemptions_coupon_id", "coupon_id", "created_at"),
        Index("ix_coupon_redemptions_sync_due", "sync_next_at",
              postgresql_where=text("sync_status = 'pending'")),
    )
