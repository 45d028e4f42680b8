from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec


class SettingsOut(msgspec.Struct, kw_only=True):
    reservation_ttl_minutes: int
    unpaid_auto_cancel_hours: int
    #: Percent as a decimal string (``"8.25"``).
    tax_rate: Decimal
    updated_at: datetime | None


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/settings``; omitted fields keep their value."""

    reservation_ttl_minutes: int | msgspec.UnsetType = msgspec.UNSET
    unpaid_auto_cancel_hours: int | msgspec.UnsetType = msgspec.UNSET
    tax_rate: Decimal | msgspec.UnsetType = msgspec.UNSET
