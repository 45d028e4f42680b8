from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from core.limits import Amount

Url = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://")]


class PaymentOut(msgspec.Struct, kw_only=True):
    """One payment attempt as the API shows it (never the client secret)."""

    id: str
    order_id: str
    attempt_number: int
    provider: str
    provider_payment_id: str | None
    status: str
    amount: int
    currency: str
    fee_amount: int | None
    redirect_url: str | None
    instructions: dict[str, Any]
    failure_code: str | None
    failure_message: str | None
    flags: dict[str, Any]
    succeeded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CheckoutIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/checkout``; every field optional."""

    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    #: Where the provider sends the customer afterwards (default: the Paymesh pay page).
    return_url: Url | None = None
    cancel_url: Url | None = None


class CheckoutOut(msgspec.Struct, kw_only=True):
    payment: PaymentOut
    redirect_url: str | None
    client_secret: str | None
    #: Bank details, transfer reference, "pay at the desk", … when the provider has them.
    instructions: dict[str, Any]
    #: True when an open attempt was handed back instead of creating a new one.
    reused: bool
    #: Providers that were tried first and were unavailable.
    failed_over: list[str]


class MarkPaidIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/orders/{id}/mark-paid`` (cash at the desk)."""

    #: If given, must equal the order total (a guard against marking the wrong order).
    amount: Amount | None = None
    reference: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None
