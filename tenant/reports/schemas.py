from __future__ import annotations

from datetime import datetime

import msgspec

from owner.fx.batch import FxUsed


class RevenueTotals(msgspec.Struct, kw_only=True):
    """Amounts in minor units of the report's currency (``net`` = gross − refunds −
    disputes_lost − provider_fees − platform_fees − commissions − tax − operating_costs;
    ``discounts`` is already off ``gross``)."""

    gross: int
    discounts: int
    refunds: int
    disputes_lost: int
    provider_fees: int
    platform_fees: int
    commissions: int
    tax: int
    operating_costs: int
    net: int
    orders: int
    average_order_value: int


class RevenueGroup(msgspec.Struct, kw_only=True):
    """One provider, UTC day (``YYYY-MM-DD``) or original currency; ``net`` here is before
    operating costs (a setting of the whole tenant, not of a group)."""

    key: str
    gross: int
    refunds: int
    net: int
    orders: int


class RevenueReport(msgspec.Struct, kw_only=True):
    currency: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    totals: RevenueTotals
    groups: list[RevenueGroup]
    fx: list[FxUsed]


class ReservationStats(msgspec.Struct, kw_only=True):
    active: int
    expired: int
    converted: int


class WebhookStats(msgspec.Struct, kw_only=True):
    received: int
    processed: int
    failed: int
    dead: int
    lag_p50_seconds: float | None
    lag_p99_seconds: float | None


class MetricsReport(msgspec.Struct, kw_only=True):
    """Rates are fractions in [0, 1] as decimal strings with 4 places (``"0.9512"``);
    ``null`` when there is nothing to divide by."""

    from_: datetime = msgspec.field(name="from")
    to: datetime
    payment_success_rate: str | None
    checkout_abandonment_rate: str | None
    refund_rate: str | None
    dispute_rate: str | None
    reservations: ReservationStats
    webhooks: WebhookStats
