from __future__ import annotations

from datetime import datetime

import msgspec


class DisputeOut(msgspec.Struct, kw_only=True):
    """A dispute as the API shows it (SPEC 3a)."""

    id: str
    order_id: str
    payment_id: str
    provider: str
    provider_dispute_id: str
    amount: int
    currency: str
    reason: str | None
    status: str
    evidence_due_by: datetime | None
    opened_at: datetime
    closed_at: datetime | None
    created_at: datetime
