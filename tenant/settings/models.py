from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import TenantBase, utcnow

DEFAULT_RESERVATION_TTL_MINUTES = 30
DEFAULT_UNPAID_AUTO_CANCEL_HOURS = 24
DEFAULT_COMMISSION_HOLD_DAYS = 14
MAX_COMMISSION_HOLD_DAYS = 3650


class TenantSettingsRow(TenantBase):
    """The tenant's one settings row (``id = 1``); absent means "all defaults"."""

    __tablename__ = "tenant_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1)
    reservation_ttl_minutes: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_RESERVATION_TTL_MINUTES)
    unpaid_auto_cancel_hours: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_UNPAID_AUTO_CANCEL_HOURS)
    #: Percent (``8.25`` = 8.25 %), applied to the discounted subtotal.
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4), default=Decimal(0))
    #: Operating costs for the revenue report: an amount per calendar month (minor units
    #: of ``operating_costs_currency``), prorated over a report's period.
    operating_costs_monthly: Mapped[int] = mapped_column(BigInteger, default=0,
                                                         server_default="0")
    operating_costs_currency: Mapped[str | None] = mapped_column(String(3))
    #: Where the tenant is told about its account (an outgoing webhook endpoint disabled).
    notification_email: Mapped[str | None] = mapped_column(String(254))
    #: ``[{name, min_referred_revenue_usd, rate_percent}]``; ``None``: the default tiers
    #: (:data:`tenant.referrals.tiers.DEFAULT_TIERS`).
    commission_tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    commission_hold_days: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_COMMISSION_HOLD_DAYS, server_default="14")
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("reservation_ttl_minutes BETWEEN 1 AND 10080", name="ttl_range"),
        CheckConstraint("unpaid_auto_cancel_hours BETWEEN 1 AND 8760", name="cancel_range"),
        CheckConstraint("tax_rate >= 0 AND tax_rate < 100", name="tax_rate_range"),
        CheckConstraint("operating_costs_monthly >= 0 AND (operating_costs_monthly = 0 "
                        "OR operating_costs_currency IS NOT NULL)", name="operating_costs"),
        CheckConstraint("commission_hold_days BETWEEN 0 AND 3650", name="hold_days_range"),
    )
