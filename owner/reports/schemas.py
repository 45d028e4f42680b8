from __future__ import annotations

from datetime import datetime

import msgspec

from owner.fx.batch import FxUsed


class TenantVolume(msgspec.Struct, kw_only=True):
    """One tenant's orders paid in the period and their totals, in the report's currency;
    ``application_fees`` is 0 until the marketplace (T16) charges platform fees."""

    slug: str
    orders: int
    gross: int
    application_fees: int


class PlatformTotals(msgspec.Struct, kw_only=True):
    orders: int
    gross: int
    application_fees: int


class PlatformReport(msgspec.Struct, kw_only=True):
    currency: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    tenants: list[TenantVolume]
    totals: PlatformTotals
    fx: list[FxUsed]
