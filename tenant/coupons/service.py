"""Coupons: create, list, change; the redemption an order reserves, and its release.

A redemption is taken by ONE conditional ``UPDATE`` of the coupon row in the order's own
transaction (:func:`reserve`): ``… WHERE reserved + times_redeemed < max_redemptions``.
Concurrent orders queue on the coupon's row lock and each re-checks the condition on the
committed row, so exactly as many succeed as the cap allows, whatever the concurrency;
a refused order rolls back with its reservation. Cancelling (or auto-cancelling) an unpaid
order gives the slot back (:func:`release`); payment turns it into a redemption
(:mod:`tenant.coupons.effects`); a refund does not give it back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor, record
from core.db import fetch_page, utcnow, where_state
from core.errors import Conflict, NotFound, UnprocessableError, ValidationError
from core.limits import INT32_MAX, MAX_AMOUNT
from core.money import normalize_currency, percent_of
from core.sql import Sql, Transaction, sql
from tenant.audit.models import AuditLog
from tenant.coupons.models import Coupon, CouponRedemption
from tenant.coupons.schemas import (
    CouponIn,
    CouponOut,
    CouponPatch,
    ProviderDiscountRef,
    RedemptionOut,
    SyncOut,
)
from tenant.coupons.states import RedemptionStatus, SyncStatus


class InvalidCoupon(UnprocessableError):
    """A coupon body the contract refuses with a 422 naming the field."""

    code = "validation_error"


class CouponRefused(UnprocessableError):
    """``coupon_code`` on an order that cannot use it (param ``coupon_code``)."""


def to_out(row: Coupon | Any) -> CouponOut:
    link = (ProviderDiscountRef(provider=row.provider_discount_provider,
                                id=row.provider_discount_id)
            if row.provider_discount_provider else None)
    return CouponOut(
        id=str(row.id), code=row.code, percent_off=row.percent_off, amount_off=row.amount_off,
        currency=row.currency, max_redemptions=row.max_redemptions,
        times_redeemed=row.times_redeemed, reserved=row.reserved, expires_at=row.expires_at,
        active=row.active, provider_discount=link, created_at=row.created_at,
        updated_at=row.updated_at)


def _whole(value: float | None, param: str, low: int, high: int) -> int | None:
    """``value`` as an int in ``[low, high]``, or a 422 naming ``param``."""
    if value is None:
        return None
    if isinstance(value, (float, bool)):
        raise InvalidCoupon(f"{param} must be a whole number", param=param)
    if not low <= value <= high:
        raise InvalidCoupon(f"{param} must be between {low} and {high}", param=param)
    return value


def _aware(value: datetime | None, param: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidCoupon(f"{param} needs a time zone (e.g. 2030-01-01T00:00:00Z)",
                            param=param)
    return value


_INSERT = """
    INSERT INTO coupons (id, code, percent_off, amount_off, currency, max_redemptions,
                         expires_at, active, provider_discount_provider, provider_discount_id,
                         created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
    ON CONFLICT ((lower(code))) DO NOTHING
    RETURNING *
"""


async def create(db: AsyncSession | Transaction, data: CouponIn, actor: Actor) -> CouponOut:
    if (data.percent_off is None) == (data.amount_off is None):
        raise InvalidCoupon("give exactly one of percent_off or amount_off",
                            param="percent_off" if data.percent_off is not None else "amount_off")
    percent = _whole(data.percent_off, "percent_off", 1, 100)
    amount = _whole(data.amount_off, "amount_off", 1, MAX_AMOUNT)
    currency: str | None = None
    if amount is not None:
        if data.currency is None:
            raise InvalidCoupon("amount_off needs its currency", param="currency")
        try:
            currency = normalize_currency(data.currency)
        except ValidationError as exc:
            raise InvalidCoupon(exc.message, param="currency") from exc
    elif data.currency is not None:
        raise InvalidCoupon("currency goes with amount_off only (a percent applies to any "
                            "currency)", param="currency")
    cap = _whole(data.max_redemptions, "max_redemptions", 1, INT32_MAX)
    expires_at = _aware(data.expires_at, "expires_at")
    link = data.provider_discount
    now = utcnow()
    row = await (await sql(db)).fetchrow(
        _INSERT, uuid.uuid4(), data.code, percent, amount, currency, cap, expires_at,
        data.active, link.provider if link else None, link.id if link else None, now)
    if row is None:
        raise Conflict(f"a coupon with code '{data.code}' exists already (codes are "
                       "case-insensitive)", code="coupon_code_taken", param="code")
    entry = audit.audit_row(actor, "coupon.created", "coupon", row["id"],
                            {"code": data.code, "percent_off": percent, "amount_off": amount,
                             "currency": currency, "max_redemptions": cap})
    await (await sql(db)).execute(
        f"WITH {audit.insert_sql(1)} SELECT 1", *audit.columns([entry]))
    return to_out(_Row(row))


class _Row:
    """A plain-SQL row with attribute access (for :func:`to_out`)."""

    def __init__(self, record_: Any) -> None:
        self.__dict__.update(dict(record_))


async def _get(session: AsyncSession, coupon_id: uuid.UUID, *, lock: bool = False) -> Coupon:
    row = await session.get(Coupon, coupon_id, with_for_update=lock,
                            populate_existing=lock)
    if row is None:
        raise NotFound(f"coupon {coupon_id} not found", param="id")
    return row


async def get(session: AsyncSession, coupon_id: uuid.UUID) -> CouponOut:
    return to_out(await _get(session, coupon_id))


async def list_coupons(session: AsyncSession, *, page: int, limit: int,
                       active: bool | None = None, code: str | None = None
                       ) -> tuple[list[CouponOut], bool]:
    query = select(Coupon).order_by(Coupon.created_at.desc(), Coupon.id)
    if active is not None:
        query = query.where(Coupon.active == active)
    if code:
        query = query.where(func.lower(Coupon.code) == code.lower())
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def update(session: AsyncSession, coupon_id: uuid.UUID, patch: CouponPatch,
                 actor: Actor) -> CouponOut:
    """Change ``active``, ``expires_at`` or ``max_redemptions`` under the coupon's row lock
    (the lock orders take): a cap below ``times_redeemed`` is a 409. A cap below
    ``times_redeemed + reserved`` is allowed: the orders holding a slot keep it, and no
    new one is taken until the count is under the cap again."""
    row = await _get(session, coupon_id, lock=True)
    changes: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(patch).items()
                               if v is not msgspec.UNSET}
    if "max_redemptions" in changes:
        cap = _whole(changes["max_redemptions"], "max_redemptions", 1, INT32_MAX)
        if cap is not None and cap < row.times_redeemed:
            raise Conflict(f"max_redemptions cannot go below times_redeemed "
                           f"({row.times_redeemed})", code="max_below_redeemed",
                           param="max_redemptions")
        changes["max_redemptions"] = cap
    if "expires_at" in changes:
        changes["expires_at"] = _aware(changes["expires_at"], "expires_at")
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    record(session, AuditLog, actor, "coupon.updated", "coupon", row.id,
           {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in changes.items()})
    return to_out(row)


def redemption_out(r: CouponRedemption) -> RedemptionOut:
    return RedemptionOut(
        order_id=str(r.order_id), status=r.status, discount=r.discount, currency=r.currency,
        provider=r.provider, created_at=r.created_at, redeemed_at=r.redeemed_at,
        released_at=r.released_at,
        sync=SyncOut(status=r.sync_status, action=r.sync_action, attempts=r.sync_attempts,
                     synced_at=r.synced_at, last_error=r.sync_last_error,
                     provider_max_before=r.sync_seen, provider_max_target=r.sync_target))


async def list_redemptions(session: AsyncSession, coupon_id: uuid.UUID, *, page: int,
                           limit: int, status: str | None = None,
                           sync_status: str | None = None) -> tuple[list[RedemptionOut], bool]:
    await _get(session, coupon_id)
    query = (select(CouponRedemption).where(CouponRedemption.coupon_id == coupon_id)
             .order_by(CouponRedemption.created_at.desc(), CouponRedemption.id))
    query = where_state(query, CouponRedemption.status, status, RedemptionStatus, "status")
    query = where_state(query, CouponRedemption.sync_status, sync_status, SyncStatus,
                        "sync_status")
    rows, more = await fetch_page(session, query, page, limit)
    return [redemption_out(r) for r in rows], more


async def get_redemption(session: AsyncSession, coupon_id: uuid.UUID,
                         order_id: uuid.UUID) -> CouponRedemption:
    row = (await session.scalars(select(CouponRedemption).where(
        CouponRedemption.coupon_id == coupon_id, CouponRedemption.order_id == order_id)
        .execution_options(populate_existing=True))).first()
    if row is None:
        raise NotFound(f"coupon {coupon_id} has no redemption for order {order_id}",
                       param="order_id")
    return row


# ------------------------------------------------------------------------ orders' side


@dataclass(frozen=True, slots=True)
class Found:
    """A coupon an order names, as read before its slot is taken."""

    id: uuid.UUID
    code: str
    percent_off: int | None
    amount_off: int | None
    currency: str | None

    def discount_on(self, subtotal: int) -> int:
        """The discount on ``subtotal``: a percent by the one rounding rule (halves away
        from zero), a fixed amount never more than the subtotal."""
        if self.percent_off is not None:
            return percent_of(subtotal, Decimal(self.percent_off))
        return min(int(self.amount_off or 0), subtotal)


_BY_CODE = """
    SELECT id, code, percent_off, amount_off, currency, max_redemptions, times_redeemed,
           reserved, expires_at, active
    FROM coupons WHERE lower(code) = lower($1)
"""

#: Takes a slot: the conditions are re-checked on the committed row after the lock wait.
_RESERVE = """
    UPDATE coupons SET reserved = reserved + 1, updated_at = $2
    WHERE id = $1 AND active AND (expires_at IS NULL OR expires_at > $2)
      AND (max_redemptions IS NULL OR reserved + times_redeemed < max_redemptions)
    RETURNING id
"""

#: The redemption, and the code (as the coupon spells it) on the order.
_RECORD = """
    WITH r AS (
        INSERT INTO coupon_redemptions (id, coupon_id, order_id, status, discount, currency,
                                        created_at, updated_at)
        VALUES ($1, $2, $3, 'reserved', $4, $5, $6, $6)
    )
    UPDATE orders SET coupon_code = $7 WHERE id = $3
"""


def _refusal(row: Any, currency: str, now: datetime) -> CouponRefused:
    """Why the coupon ``row`` (or ``None``) cannot be used on an order now."""
    if row is None or not row["active"]:
        return CouponRefused("this coupon code is not valid", code="coupon_invalid",
                             param="coupon_code")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return CouponRefused("this coupon has expired", code="coupon_expired",
                             param="coupon_code")
    if row["currency"] is not None and row["currency"] != currency:
        return CouponRefused(f"this coupon takes an amount off in {row['currency']}; the "
                             f"order is in {currency}", code="coupon_currency_mismatch",
                             param="coupon_code")
    return CouponRefused("this coupon has been used as many times as it may be",
                         code="coupon_exhausted", param="coupon_code")


async def find_for_order(statements: Sql, code: str, currency: str, now: datetime) -> Found:
    """The coupon ``code`` names, if an order in ``currency`` may use it right now (else
    the 422 saying why). Read without a lock: :func:`reserve` re-checks everything."""
    row = await statements.fetchrow(_BY_CODE, code)
    usable = (row is not None and row["active"]
              and (row["expires_at"] is None or row["expires_at"] > now)
              and (row["currency"] is None or row["currency"] == currency)
              and (row["max_redemptions"] is None
                   or row["reserved"] + row["times_redeemed"] < row["max_redemptions"]))
    if not usable:
        raise _refusal(row, currency, now)
    assert row is not None
    return Found(id=row["id"], code=row["code"], percent_off=row["percent_off"],
                 amount_off=row["amount_off"], currency=row["currency"])


async def reserve(statements: Sql, found: Found, order_id: uuid.UUID, discount: int,
                  currency: str, now: datetime) -> None:
    """Take one slot of ``found`` for the order (inserted already in this transaction),
    or raise the 422 saying why not; the caller's transaction rolls back on it."""
    if await statements.fetchval(_RESERVE, found.id, now) is None:
        raise _refusal(await statements.fetchrow(_BY_CODE, found.code), currency, now)
    await statements.execute(_RECORD, uuid.uuid4(), found.id, order_id, discount, currency,
                             now, found.code)


_RELEASE = """
    WITH r AS (
        UPDATE coupon_redemptions SET status = 'released', released_at = $2, updated_at = $2
        WHERE order_id = $1 AND status = 'reserved'
        RETURNING coupon_id
    )
    UPDATE coupons c SET reserved = c.reserved - 1, updated_at = $2
    FROM r WHERE c.id = r.coupon_id
"""


async def release(db: AsyncSession | Transaction, order_id: uuid.UUID, now: datetime) -> None:
    """The order was cancelled (by hand or unpaid too long): its slot goes back."""
    await (await sql(db)).execute(_RELEASE, order_id, now)
