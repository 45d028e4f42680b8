"""Coupon bodies and answers (SPEC 3a, **Coupons**).

``percent_off`` and ``amount_off`` are typed as numbers so that a fractional, zero,
negative or out-of-range value reaches the service and gets its 422 naming the field
(:func:`tenant.coupons.service.create`), as the contract asks for these mistakes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from core.limits import COUPON_LEN

CouponCode = Annotated[str, msgspec.Meta(min_length=1, max_length=COUPON_LEN,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Number = int | float


class ProviderDiscountRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A discount kept at a provider (``polar``) that this coupon mirrors."""

    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=32,
                                          pattern=r"^[a-z0-9_]+$")]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CouponIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/coupons``: exactly one of ``percent_off`` (a whole number 1–100)
    or ``amount_off`` (minor units, with ``currency``)."""

    code: CouponCode
    percent_off: Number | None = None
    amount_off: Number | None = None
    currency: str | None = None
    max_redemptions: Number | None = None
    expires_at: datetime | None = None
    active: bool = True
    provider_discount: ProviderDiscountRef | None = None


class CouponPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/coupons/{id}``; omitted fields keep their value.
    ``max_redemptions`` may not go below ``times_redeemed`` (``null``: no cap)."""

    active: bool | msgspec.UnsetType = msgspec.UNSET
    expires_at: datetime | None | msgspec.UnsetType = msgspec.UNSET
    max_redemptions: Number | None | msgspec.UnsetType = msgspec.UNSET


class CouponOut(msgspec.Struct, kw_only=True):
    id: str
    code: str
    percent_off: int | None
    amount_off: int | None
    currency: str | None
    max_redemptions: int | None
    #: Paid orders that used it.
    times_redeemed: int
    #: Unpaid orders holding a redemption.
    reserved: int
    expires_at: datetime | None
    active: bool
    provider_discount: ProviderDiscountRef | None
    created_at: datetime
    updated_at: datetime


class SyncOut(msgspec.Struct, kw_only=True):
    """The provider-discount sync of one redemption (``docs/coupons.md``)."""

    #: ``not_linked``, ``pending``, ``done`` or ``failed``.
    status: str
    #: ``decremented``, ``deleted``, ``already_deleted`` or ``skipped_unlimited``.
    action: str | None
    attempts: int
    synced_at: datetime | None
    #: Why the last try failed (while ``pending`` or once ``failed``).
    last_error: str | None
    #: The provider cap read before the change, and the cap this redemption brings it to.
    provider_max_before: int | None
    provider_max_target: int | None


class RedemptionOut(msgspec.Struct, kw_only=True):
    order_id: str
    #: ``reserved``, ``redeemed`` or ``released``.
    status: str
    discount: int
    currency: str
    #: The provider that took the payment (once redeemed).
    provider: str | None
    created_at: datetime
    redeemed_at: datetime | None
    released_at: datetime | None
    sync: SyncOut
