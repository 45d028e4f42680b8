"""Payments: the API other packages use (webhook worker, scheduler, controllers).

The settling functions live in :mod:`tenant.payments.events` and checkout in
:mod:`tenant.payments.checkout`; this module gathers the public names and adds listing
and cash payments.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, where_state
from core.errors import NotFound, UnprocessableError
from tenant.audit.models import AuditLog
from tenant.orders.lifecycle import lock_order
from tenant.orders.states import PAYABLE, OrderStatus, PaymentStatus
from tenant.payments.errors import OrderNotPayable
from tenant.payments.events import (
    apply_success,
    find_attempt,
    mark_payment_failed,
    mark_payment_succeeded,
    next_attempt_number,
    to_out,
)
from tenant.payments.models import Payment, PaymentAttemptStatus
from tenant.payments.schemas import MarkPaidIn, PaymentOut
from tenant.payments.states import ATTEMPT_STATUS
from tenant.provider_configs.models import ProviderConfigRow

__all__ = [
    "find_attempt",
    "get_payment",
    "list_payments",
    "mark_paid_cash",
    "mark_payment_failed",
    "mark_payment_succeeded",
]

CASH = "cash"


async def list_payments(session: AsyncSession, *, page: int, limit: int,
                        order_id: uuid.UUID | None = None, provider: str | None = None,
                        status: str | None = None, created_from: datetime | None = None,
                        created_to: datetime | None = None) -> tuple[list[PaymentOut], bool]:
    query = select(Payment).order_by(Payment.created_at.desc(), Payment.id)
    if order_id is not None:
        query = query.where(Payment.order_id == order_id)
    if provider:
        query = query.where(Payment.provider == provider)
    query = where_state(query, Payment.status, status, PaymentAttemptStatus, "status")
    if created_from is not None:
        query = query.where(Payment.created_at >= created_from)
    if created_to is not None:
        query = query.where(Payment.created_at < created_to)
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentOut:
    row = await session.get(Payment, payment_id)
    if row is None:
        raise NotFound(f"payment {payment_id} not found", param="id")
    return to_out(row)


async def mark_paid_cash(session: AsyncSession, order_id: uuid.UUID, data: MarkPaidIn, *,
                         actor: Actor) -> PaymentOut:
    """A tenant admin took the money at the desk: the order is paid, audited, posted.

    Reuses the order's open cash attempt (from a "pay at the desk" checkout) if any.
    """
    order = await lock_order(session, order_id)
    if OrderStatus(order.status) not in PAYABLE:
        if order.payment_status not in (PaymentStatus.NOT_PAID, PaymentStatus.PENDING):
            raise OrderNotPayable(f"order {order.number} is already paid",
                                  code="order_already_paid")
        raise OrderNotPayable(f"order {order.number} is {order.status} and cannot be paid")
    if order.total <= 0:
        raise UnprocessableError("the order total is zero; nothing to collect",
                                 code="nothing_to_pay")
    configured = await session.scalar(
        select(ProviderConfigRow.provider_code).where(ProviderConfigRow.provider_code == CASH))
    if configured is None:
        raise UnprocessableError("cash is not configured for this tenant (PUT /v1/providers/"
                                 "cash first); the order cannot be marked paid",
                                 code="provider_not_configured")
    if data.amount is not None and data.amount != order.total:
        raise UnprocessableError(f"amount {data.amount} does not match the order total "
                                 f"{order.total} {order.currency}", code="amount_mismatch",
                                 param="amount")
    provider_payment_id = f"cash_{order.id}"
    attempt = (await session.scalars(select(Payment).where(
        Payment.provider == CASH, Payment.provider_payment_id == provider_payment_id)
        .with_for_update())).first()
    if attempt is None:
        attempt = Payment(order_id=order.id, attempt_number=await next_attempt_number(
            session, order.id), provider=CASH, provider_payment_id=provider_payment_id,
            idempotency_key=f"{order.id}:cash", status=PaymentAttemptStatus.PENDING,
            amount=order.total, currency=order.currency, instructions={}, flags={})
        session.add(attempt)
        await session.flush()
    elif attempt.status != PaymentAttemptStatus.PENDING:  # revived for this payment
        attempt.status = ATTEMPT_STATUS.check(attempt.status, PaymentAttemptStatus.PENDING,
                                              param=None)
    if data.reference:
        attempt.instructions = {**(attempt.instructions or {}), "reference": data.reference}
    await apply_success(session, order, attempt, amount=order.total, currency=order.currency,
                        fee_amount=0, actor=actor, cash=True)
    record(session, AuditLog, actor, "order.marked_paid", "order", order.id,
           {"payment_id": str(attempt.id), "amount": order.total, "currency": order.currency,
            "reference": data.reference, "note": data.note})
    return to_out(attempt)
