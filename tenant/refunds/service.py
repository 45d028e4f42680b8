"""Refunds: reading them, and recording the ones providers report (webhooks).

A provider's refund is one row per ``(provider, provider_refund_id)``: a redelivery finds
it and changes nothing. Its status moves through :data:`REFUND_STATUS`; when it succeeds,
the effects registered for :attr:`Movement.REFUNDED` run (ledger, ``amount_refunded`` …).
The order's own moves are :mod:`tenant.webhooks.money_events`'.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page, where_state
from core.errors import NotFound
from tenant.disputes.models import Dispute
from tenant.disputes.states import DisputeStatus
from tenant.refunds.models import Refund
from tenant.refunds.schemas import RefundOut
from tenant.refunds.states import HOLDING, REFUND_STATUS, RefundStatus


def to_out(row: Refund) -> RefundOut:
    return RefundOut(
        id=str(row.id), order_id=str(row.order_id), payment_id=str(row.payment_id),
        provider=row.provider, amount=row.amount, currency=row.currency, status=row.status,
        reason=row.reason, keep_access=row.keep_access, restock=row.restock,
        provider_refund_id=row.provider_refund_id, failure_reason=row.failure_reason,
        created_at=row.created_at, completed_at=row.completed_at)


async def list_refunds(session: AsyncSession, *, page: int, limit: int,
                       order_id: uuid.UUID | None = None,
                       status: str | None = None) -> tuple[list[RefundOut], bool]:
    query = select(Refund).order_by(Refund.created_at.desc(), Refund.id)
    if order_id is not None:
        query = query.where(Refund.order_id == order_id)
    query = where_state(query, Refund.status, status, RefundStatus, "status")
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def get_refund(session: AsyncSession, refund_id: uuid.UUID) -> RefundOut:
    row = await session.get(Refund, refund_id)
    if row is None:
        raise NotFound(f"refund {refund_id} not found", param="id")
    return to_out(row)


async def by_provider_id(session: AsyncSession, provider: str,
                         provider_refund_id: str) -> Refund | None:
    """The refund a provider's id names, row-locked (the caller holds the order lock)."""
    return (await session.scalars(select(Refund).where(
        Refund.provider == provider, Refund.provider_refund_id == provider_refund_id)
        .with_for_update())).first()


async def unanswered(session: AsyncSession, payment_id: uuid.UUID,
                     amount: int) -> Refund | None:
    """A refund sent from Paymesh whose provider answer is not recorded yet (pending, no
    provider id) for this amount, row-locked: a provider webhook that overtook the answer
    matches it instead of recording a second refund."""
    return (await session.scalars(select(Refund).where(
        Refund.payment_id == payment_id, Refund.status == RefundStatus.PENDING,
        Refund.provider_refund_id.is_(None), Refund.amount == amount)
        .order_by(Refund.created_at).limit(1).with_for_update())).first()


async def pending_of(session: AsyncSession, payment_id: uuid.UUID,
                     amount: int) -> Refund | None:
    """The oldest pending refund of this payment for this amount, answered or not,
    row-locked: for a provider whose refund webhook names no refund id we know
    (Paystack's carries the processor's reference, not the id ``POST /refund`` gave)."""
    return (await session.scalars(select(Refund).where(
        Refund.payment_id == payment_id, Refund.status == RefundStatus.PENDING,
        Refund.amount == amount)
        .order_by(Refund.created_at).limit(1).with_for_update())).first()


async def refundable(session: AsyncSession, payment_id: uuid.UUID, captured: int, *,
                     besides: uuid.UUID | None = None) -> int:
    """What is left to refund on a payment: captured − refunds pending, succeeded or
    manual − lost disputes (``besides``: a refund left out of the sum)."""
    held = await session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.payment_id == payment_id, Refund.status.in_([s.value for s in HOLDING]),
        Refund.id != besides if besides is not None else True))
    lost = await session.scalar(select(func.coalesce(func.sum(Dispute.amount), 0)).where(
        Dispute.payment_id == payment_id, Dispute.status == DisputeStatus.LOST))
    return captured - int(held or 0) - int(lost or 0)


async def succeeded_total(session: AsyncSession, payment_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.payment_id == payment_id, Refund.status == RefundStatus.SUCCEEDED)) or 0)


def succeed(row: Refund, now: object) -> None:
    row.status = REFUND_STATUS.check(row.status, RefundStatus.SUCCEEDED)
    row.completed_at = now  # type: ignore[assignment]
