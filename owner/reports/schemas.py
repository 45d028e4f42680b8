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
    #: False when its database could not be read (its server down): its figures are 0
    #: and left out of the totals, which then cover only the tenants that answered.
    available: bool = True


class PlatformTotals(msgspec.Struct, kw_only=True):
    orders: int = 0
    gross: int = 0
    application_fees: int = 0
    #: Tenants whose databases could not be read (not in the totals).
    unavailable: int = 0


class PlatformReport(msgspec.Struct, kw_only=True):
    currency: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    tenants: list[TenantVolume]
    totals: PlatformTotals
    fx: list[FxUsed]
