from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from core.limits import Email

#: ``tax_rate`` is a percent, not a fraction: the API schema says so.
TaxRate = Annotated[Decimal, msgspec.Meta(
    description="Tax rate in percent, as a decimal string: \"8.25\" is 8.25 % (not "
                "\"0.0825\", which would be 0.0825 %). From 0 up to (not including) 100, "
                "at most 4 decimals; anything else is refused with 400.",
    examples=["8.25"])]


class CommissionTier(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One commission tier (SPEC 3a, **Referrals and commissions**)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    #: From this referred revenue on (US cents, paid minus refunded) the tier applies.
    min_referred_revenue_usd: Annotated[int, msgspec.Meta(ge=0)]
    rate_percent: Annotated[Decimal, msgspec.Meta(
        description="Commission rate in percent as a decimal string (\"25\" is 25 %), "
                    "0 to 100 with at most 2 decimals.", examples=["25"])]


class SettingsOut(msgspec.Struct, kw_only=True):
    reservation_ttl_minutes: int
    unpaid_auto_cancel_hours: int
    #: Percent as a decimal string (``"8.25"``).
    tax_rate: TaxRate
    #: Operating costs per calendar month (minor units of ``operating_costs_currency``),
    #: prorated over a revenue report's period and taken off its ``net``.
    operating_costs_monthly: int = 0
    operating_costs_currency: str | None = None
    #: Where the tenant is told about its account (an outgoing webhook endpoint disabled).
    notification_email: str | None = None
    #: The tiers in force (the defaults until the tenant sets its own).
    commission_tiers: list[CommissionTier]
    #: Days a commission stays ``pending`` before the scheduler approves it.
    commission_hold_days: int
    updated_at: datetime | None


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/settings``; omitted fields keep their value."""

    reservation_ttl_minutes: int | msgspec.UnsetType = msgspec.UNSET
    unpaid_auto_cancel_hours: int | msgspec.UnsetType = msgspec.UNSET
    tax_rate: TaxRate | msgspec.UnsetType = msgspec.UNSET
    operating_costs_monthly: int | msgspec.UnsetType = msgspec.UNSET
    operating_costs_currency: str | None | msgspec.UnsetType = msgspec.UNSET
    notification_email: Email | None | msgspec.UnsetType = msgspec.UNSET
    #: The whole table (ascending thresholds starting at 0); ``null`` restores the defaults.
    commission_tiers: list[CommissionTier] | None | msgspec.UnsetType = msgspec.UNSET
    commission_hold_days: int | msgspec.UnsetType = msgspec.UNSET
