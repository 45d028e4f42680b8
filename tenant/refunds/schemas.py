from __future__ import annotations

from datetime import datetime

import msgspec


class RefundOut(msgspec.Struct, kw_only=True):
    """A refund as the API shows it (SPEC 3a)."""

    id: str
    order_id: str
    payment_id: str
    provider: str
    amount: int
    currency: str
    status: str
    reason: str | None
    keep_access: bool
    restock: bool
    provider_refund_id: str | None
    failure_reason: str | None
    created_at: datetime
    completed_at: datetime | None
