from __future__ import annotations

from datetime import datetime

import msgspec


class EntitlementOut(msgspec.Struct, kw_only=True):
    """An entitlement as the API shows it (SPEC 3a, T15)."""

    id: str
    order_id: str
    product_id: str
    customer_email: str
    status: str
    license_key: str
    granted_at: datetime
    revoked_at: datetime | None
    created_at: datetime
