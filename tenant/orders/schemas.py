from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from core.limits import COUPON_LEN, Amount, Email, Reason

Quantity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=COUPON_LEN)]


class OrderItemIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A product line (``product_id``; price from the product unless ``unit_amount`` is
    given) or a free-text line (``description`` + ``unit_amount``)."""

    quantity: Quantity
    product_id: uuid.UUID | None = None
    description: Reason | None = None
    unit_amount: Amount | None = None


class OrderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders``."""

    customer_email: Email
    currency: str
    items: Annotated[list[OrderItemIn], msgspec.Meta(min_length=1, max_length=100)]
    coupon_code: Code | None = None
    referral_code: Code | None = None
    metadata: dict[str, Annotated[str, msgspec.Meta(max_length=500)]] = {}


class TransitionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: str
    reason: Reason | None = None


class CancelIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason | None = None


class OrderItemOut(msgspec.Struct, kw_only=True):
    id: str
    product_id: str | None
    description: str
    kind: str
    quantity: int
    unit_amount: int
    amount: int


class OrderOut(msgspec.Struct, kw_only=True):
    id: str
    number: str
    status: str
    payment_status: str
    fulfillment: str
    currency: str
    customer_email: str
    subtotal: int
    #: Every discount: the coupon's, then the referral code's on what the coupon left.
    discount: int
    #: The part of ``discount`` the referral code gave.
    referral_discount: int = 0
    tax: int
    tax_rate: Decimal
    total: int
    original_amount: int
    pay_url: str
    items: list[OrderItemOut]
    coupon_code: str | None
    referral_code: str | None
    metadata: dict[str, Any]
    flags: dict[str, Any]
    #: Where an admin may move the order by hand (``POST …/transition``).
    allowed_transitions: list[str]
    status_reason: str | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: The providers that can take this order's currency and amount right now, best
    #: first (what ``GET /v1/providers/for-currency/{currency}?amount=`` considers); ``[]``
    #: when nothing can (the customer would find no way to pay online) or the order is
    #: not payable. ``null`` in the responses of transition and cancel.
    payment_options: list[str] | None = None
    #: The sum of the order's succeeded refunds.
    amount_refunded: int = 0
