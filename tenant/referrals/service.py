"""Referral codes: create, list, change; and the code an order names.

A code belongs to a referrer (by e-mail, case-insensitive): every code of one referrer
adds to the same referred revenue and tier. Codes are unique case-insensitively (an
index on ``lower(code)``): a duplicate is a 409 ``referral_code_taken``. The tier shown is
the one the referrer's revenue reaches in the tenant's tier table now.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, utcnow
from core.errors import Conflict, NotFound, UnprocessableError
from core.money import percent_of
from core.sql import Sql
from tenant.audit.models import AuditLog
from tenant.referrals import tiers as tier_table
from tenant.referrals.models import ReferralCode, Referrer
from tenant.referrals.schemas import ReferralCodeIn, ReferralCodeOut, ReferralCodePatch
from tenant.settings import service as settings_service


class InvalidReferralCode(UnprocessableError):
    """A referral-code body the contract refuses (422 naming the field)."""

    code = "validation_error"


def _percent(value: object) -> int:
    if isinstance(value, (float, bool)) or not isinstance(value, int):
        raise InvalidReferralCode("discount_percent must be a whole number from 0 to 100",
                                  param="discount_percent")
    if not 0 <= value <= 100:
        raise InvalidReferralCode("discount_percent must be between 0 and 100",
                                  param="discount_percent")
    return value


def to_out(code: ReferralCode, referrer: Referrer,
           tiers: tuple[tier_table.Tier, ...]) -> ReferralCodeOut:
    return ReferralCodeOut(
        id=str(code.id), code=code.code, referrer_email=referrer.email,
        discount_percent=code.discount_percent,
        tier=tier_table.tier_for(referrer.referred_revenue_usd, tiers).name,
        referred_revenue_usd=referrer.referred_revenue_usd, active=code.active,
        created_at=code.created_at, updated_at=code.updated_at)


async def _tiers(session: AsyncSession) -> tuple[tier_table.Tier, ...]:
    return (await settings_service.load(session)).commission_tiers


async def create(session: AsyncSession, data: ReferralCodeIn, actor: Actor) -> ReferralCodeOut:
    percent = _percent(data.discount_percent)
    email = data.referrer_email.strip().lower()
    tiers = await _tiers(session)
    now = utcnow()
    # the referrer exists once per e-mail, whoever creates its first code
    await session.execute(insert(Referrer).values(
        id=uuid.uuid4(), email=email, referred_revenue_usd=0, tier=tiers[0].name,
        created_at=now, updated_at=now).on_conflict_do_nothing(index_elements=["email"]))
    referrer = (await session.scalars(select(Referrer).where(Referrer.email == email))).one()
    taken = (await session.scalars(select(ReferralCode.id).where(
        func.lower(ReferralCode.code) == data.code.lower()))).first()
    inserted = None if taken is not None else (await session.execute(
        insert(ReferralCode).values(
            id=uuid.uuid4(), code=data.code, referrer_id=referrer.id,
            discount_percent=percent, active=True, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[func.lower(ReferralCode.code)])
        .returning(ReferralCode.id))).scalar()
    if inserted is None:
        raise Conflict(f"the referral code '{data.code}' exists already (codes are "
                       "case-insensitive)", code="referral_code_taken", param="code")
    code = await session.get(ReferralCode, inserted)
    assert code is not None
    record(session, AuditLog, actor, "referral_code.created", "referral_code", code.id,
           {"code": code.code, "referrer_email": email, "discount_percent": percent})
    return to_out(code, referrer, tiers)


async def _get(session: AsyncSession, code_id: uuid.UUID, *,
               lock: bool = False) -> tuple[ReferralCode, Referrer]:
    code = await session.get(ReferralCode, code_id, with_for_update=lock,
                             populate_existing=lock)
    if code is None:
        raise NotFound(f"referral code {code_id} not found", param="id")
    referrer = await session.get(Referrer, code.referrer_id)
    assert referrer is not None
    return code, referrer


async def get(session: AsyncSession, code_id: uuid.UUID) -> ReferralCodeOut:
    return to_out(*await _get(session, code_id), await _tiers(session))


async def list_codes(session: AsyncSession, *, page: int, limit: int,
                     active: bool | None = None, code: str | None = None,
                     referrer_email: str | None = None) -> tuple[list[ReferralCodeOut], bool]:
    query = (select(ReferralCode, Referrer).join(Referrer,
                                                 Referrer.id == ReferralCode.referrer_id)
             .order_by(ReferralCode.created_at.desc(), ReferralCode.id))
    if active is not None:
        query = query.where(ReferralCode.active == active)
    if code:
        query = query.where(func.lower(ReferralCode.code) == code.lower())
    if referrer_email:
        query = query.where(Referrer.email == referrer_email.strip().lower())
    rows, more = await fetch_page(session, query, page, limit, tuples=True)
    tiers = await _tiers(session)
    return [to_out(c, r, tiers) for c, r in rows], more


async def update(session: AsyncSession, code_id: uuid.UUID, patch: ReferralCodePatch,
                 actor: Actor) -> ReferralCodeOut:
    """``active`` and ``discount_percent``; orders made before keep the discount they got."""
    code, referrer = await _get(session, code_id, lock=True)
    changes: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(patch).items()
                               if v is not msgspec.UNSET}
    if "discount_percent" in changes:
        changes["discount_percent"] = _percent(changes["discount_percent"])
    for name, value in changes.items():
        setattr(code, name, value)
    code.updated_at = utcnow()
    await session.flush()
    record(session, AuditLog, actor, "referral_code.updated", "referral_code", code.id,
           changes)
    return to_out(code, referrer, await _tiers(session))


# ------------------------------------------------------------------------ orders' side


@dataclass(frozen=True, slots=True)
class Found:
    """The referral code an order names, as read when the order is made."""

    id: uuid.UUID
    code: str
    discount_percent: int

    def discount_on(self, rest: int) -> int:
        """The buyer's discount on ``rest`` (what is left after any coupon): the percent
        by the one rounding rule (:func:`core.money.percent_of`)."""
        return percent_of(rest, Decimal(self.discount_percent))


_BY_CODE = """
    SELECT c.id, c.code, c.discount_percent, c.active, r.email
    FROM referral_codes c JOIN referrers r ON r.id = c.referrer_id
    WHERE lower(c.code) = lower($1)
"""

#: The code (as its owner spells it) and the discount it gave, on the new order.
_ON_ORDER = "UPDATE orders SET referral_code = $2, referral_discount = $3 WHERE id = $1"


async def find_for_order(statements: Sql, code: str, customer_email: str) -> Found:
    """The active code ``code`` names, unless the buyer is its referrer; else the 422
    (param ``referral_code``): ``referral_code_invalid`` or ``self_referral``."""
    row = await statements.fetchrow(_BY_CODE, code)
    if row is None or not row["active"]:
        raise UnprocessableError("this referral code is not valid",
                                 code="referral_code_invalid", param="referral_code")
    if row["email"] == customer_email.strip().lower():
        raise UnprocessableError("a referrer cannot use its own referral code",
                                 code="self_referral", param="referral_code")
    return Found(id=row["id"], code=row["code"], discount_percent=row["discount_percent"])


async def apply_to_order(statements: Sql, found: Found, order_id: uuid.UUID,
                         discount: int) -> None:
    """Record the code and its discount on the order (inserted already, same transaction)."""
    await statements.execute(_ON_ORDER, order_id, found.code, discount)
