"""Referral-code and commission bodies and answers (SPEC 3a, **Referrals and
commissions**).

``discount_percent`` is typed as a number so that a fractional or out-of-range value
reaches the service and gets its 422 naming the field, as coupons do.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from core.limits import COUPON_LEN, Email

ReferralCodeText = Annotated[str, msgspec.Meta(min_length=1, max_length=COUPON_LEN,
                                               pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Number = int | float


class ReferralCodeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/referral-codes``; ``discount_percent`` is a whole percent 0–100
    (default 10) the buyer gets off what is left after any coupon."""

    code: ReferralCodeText
    referrer_email: Email
    discount_percent: Number = 10


class ReferralCodePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/referral-codes/{id}``; omitted fields keep their value."""

    active: bool | msgspec.UnsetType = msgspec.UNSET
    discount_percent: Number | msgspec.UnsetType = msgspec.UNSET


class ReferralCodeOut(msgspec.Struct, kw_only=True):
    id: str
    code: str
    referrer_email: str
    discount_percent: int
    #: The referrer's tier now (by its referred revenue).
    tier: str
    #: US cents, paid minus refunded, over every code of this referrer.
    referred_revenue_usd: int
    active: bool
    created_at: datetime
    updated_at: datetime


class CommissionOut(msgspec.Struct, kw_only=True):
    id: str
    order_id: str
    referral_code: str
    referrer_email: str
    #: What the buyer paid (order currency, minor units).
    base_amount: int
    #: ``base_amount`` × ``rate_percent`` (order currency), less refunds pro rata.
    amount: int
    currency: str
    #: The rate it was created with, in percent (decimal string).
    rate_percent: Decimal
    #: The tier it was created with.
    tier: str
    #: ``amount`` in US cents (``null`` when no rate was available).
    amount_usd: int | None
    #: Units of ``currency`` per 1 USD, as a decimal string.
    fx_rate: Decimal | None
    #: ``native``, ``manual``, ``cached``, ``api``, ``expired`` or ``fallback``.
    fx_source: str | None
    #: ``pending``, ``approved``, ``paid`` or ``cancelled``.
    status: str
    approved_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
