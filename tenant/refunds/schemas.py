from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from core.limits import MAX_AMOUNT


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


class RefundItemIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An order item returned with a refund (its units are restocked)."""

    order_item_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class RefundIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/refunds`` (SPEC 3a). No ``amount``: all that is
    still refundable. ``restock`` (default true) applies to ``items``, or to every
    physical item on a full refund."""

    amount: Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    keep_access: bool = False
    restock: bool = True
    items: Annotated[list[RefundItemIn], msgspec.Meta(max_length=100)] | None = None
