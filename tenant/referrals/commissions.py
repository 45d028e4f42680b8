"""Commissions: reading them, the scheduler's approval, and marking one paid.

They are created, reduced and cancelled by settlement effects
(:mod:`tenant.referrals.effects`); here they move ``pending → approved`` (the scheduler,
once the tenant's ``commission_hold_days`` passed with the order not fully refunded, not
lost in a dispute and no dispute open) and ``approved → paid`` (``mark-paid``: the
tenant paid the referrer outside Paymesh; the ledger settles the payable from the bank).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, utcnow, where_state
from core.errors import NotFound
from core.money import plain_decimal
from core.sql import Transaction, sql
from tenant.audit.models import AuditLog
from tenant.ledger import accounts
from tenant.ledger.service import Line, post
from tenant.orders.states import PaymentStatus
from tenant.referrals.models import Commission
from tenant.referrals.schemas import CommissionOut
from tenant.referrals.states import COMMISSION_STATUS, CommissionStatus
from tenant.settings.models import DEFAULT_COMMISSION_HOLD_DAYS


def to_out(row: Commission) -> CommissionOut:
    return CommissionOut(
        id=str(row.id), order_id=str(row.order_id), referral_code=row.referral_code,
        referrer_email=row.referrer_email, base_amount=row.base_amount, amount=row.amount,
        currency=row.currency, rate_percent=plain_decimal(row.rate_percent),
        tier=row.tier, amount_usd=row.amount_usd,
        fx_rate=plain_decimal(row.fx_rate) if row.fx_rate is not None else None,
        fx_source=row.fx_source, status=row.status, approved_at=row.approved_at,
        paid_at=row.paid_at, cancelled_at=row.cancelled_at, created_at=row.created_at,
        updated_at=row.updated_at)


async def _get(session: AsyncSession, commission_id: uuid.UUID, *,
               lock: bool = False) -> Commission:
    row = await session.get(Commission, commission_id, with_for_update=lock,
                            populate_existing=lock)
    if row is None:
        raise NotFound(f"commission {commission_id} not found", param="id")
    return row


async def get(session: AsyncSession, commission_id: uuid.UUID) -> CommissionOut:
    return to_out(await _get(session, commission_id))


async def list_commissions(session: AsyncSession, *, page: int, limit: int,
                           status: str | None = None, referral_code: str | None = None,
                           order_id: uuid.UUID | None = None,
                           ) -> tuple[list[CommissionOut], bool]:
    query = select(Commission).order_by(Commission.created_at.desc(), Commission.id)
    query = where_state(query, Commission.status, status, CommissionStatus, "status")
    if referral_code:
        query = query.where(func.lower(Commission.referral_code) == referral_code.lower())
    if order_id is not None:
        query = query.where(Commission.order_id == order_id)
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def mark_paid(session: AsyncSession, commission_id: uuid.UUID,
                    actor: Actor) -> CommissionOut:
    """``approved → paid`` (else 409 ``commission_not_approved``), audited, and the payable
    settled in the ledger (once per commission, by its posting key)."""
    row = await _get(session, commission_id, lock=True)
    COMMISSION_STATUS.check(row.status, CommissionStatus.PAID)
    now = utcnow()
    row.status, row.paid_at, row.updated_at = CommissionStatus.PAID.value, now, now
    await session.flush()
    await post(session, key=f"commission.paid:{row.id}", kind="commission.paid",
               currency=row.currency, order_id=row.order_id, payment_id=row.payment_id,
               description=f"referral commission paid to {row.referrer_email}",
               data={"commission_id": str(row.id)},
               lines=[Line(accounts.COMMISSIONS_PAYABLE, debit=row.amount),
                      Line(accounts.CASH_AT_BANK, credit=row.amount)])
    record(session, AuditLog, actor, "commission.paid", "commission", row.id,
           {"order_id": str(row.order_id), "amount": row.amount, "currency": row.currency,
            "referrer_email": row.referrer_email})
    return to_out(row)


#: Pending commissions past the tenant's hold whose order is neither refunded nor in a
#: dispute (a full refund or a lost dispute cancelled them already); ``RETURNING`` the
#: ids approved (for the ``commission.approved`` event).
_APPROVE = f"""
    UPDATE commissions k SET status = '{CommissionStatus.APPROVED.value}', approved_at = $1,
                             updated_at = $1
    FROM orders o
    WHERE o.id = k.order_id
      AND k.status = '{CommissionStatus.PENDING.value}'
      AND k.created_at <= $1::timestamptz - make_interval(days => COALESCE(
            (SELECT commission_hold_days FROM tenant_settings WHERE id = 1), $2::int))
      AND o.payment_status NOT IN ('{PaymentStatus.DISPUTED.value}',
                                   '{PaymentStatus.REFUNDED.value}')
    RETURNING k.id
"""


async def approve_due(db: AsyncSession | Transaction, now: datetime | None = None,
                      ) -> list[uuid.UUID]:
    """The scheduler's job: approve every commission whose hold is over (one statement),
    and write their ``commission.approved`` events to the outgoing webhooks' outbox in the
    same transaction."""
    from tenant.outgoing import events

    now = now or utcnow()
    rows = await (await sql(db)).fetch(_APPROVE, now, DEFAULT_COMMISSION_HOLD_DAYS)
    approved = [row["id"] for row in rows]
    if approved:
        session = await db.orm() if isinstance(db, Transaction) else db
        found = (await session.scalars(select(Commission).where(
            Commission.id.in_(approved)))).all()
        await events.objects(db, events.EventType.COMMISSION_APPROVED, [
            (f"commission.approved:{row.id}", msgspec.to_builtins(to_out(row)))
            for row in found], now=now)
    return approved
