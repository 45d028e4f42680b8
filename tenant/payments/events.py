"""Settling payment attempts: success, failure, cash. Called by webhooks, reconciliation,
the payment page and the mark-paid endpoint — all in the caller's transaction.

Every function here is idempotent (status checks under row locks) and order-independent
(a failure reported after a success changes nothing; a success after a failure still
applies, as a retried card can succeed). Locks are taken order first, then attempt,
everywhere, so a checkout and a webhook for the same order cannot deadlock.

Money that moved but cannot be applied normally is never dropped: an amount mismatch or a
second successful charge marks the attempt ``needs_review`` and flags the order for staff,
and a payment for an already cancelled order is recorded (and posted) with a flag.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from tenant.audit.models import AuditLog
from tenant.ledger import service as ledger
from tenant.notifications import service as notifications
from tenant.orders import reservations
from tenant.orders.lifecycle import lock_order, move
from tenant.orders.models import Order
from tenant.orders.states import PAYABLE, OrderStatus, PaymentStatus
from tenant.payments.errors import UnknownPaymentAttempt
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus
from tenant.payments.schemas import PaymentOut


def to_out(row: Payment) -> PaymentOut:
    return PaymentOut(
        id=str(row.id), order_id=str(row.order_id), attempt_number=row.attempt_number,
        provider=row.provider, provider_payment_id=row.provider_payment_id, status=row.status,
        amount=row.amount, currency=row.currency, fee_amount=row.fee_amount,
        redirect_url=row.redirect_url, instructions=row.instructions or {},
        failure_code=row.failure_code, failure_message=row.failure_message,
        flags=row.flags or {}, succeeded_at=row.succeeded_at, created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _by_provider_id(provider: str, provider_payment_id: str):  # type: ignore[no-untyped-def]
    return (Payment.provider == provider) & (Payment.provider_payment_id == provider_payment_id)


async def find_attempt(session: AsyncSession, provider: str,
                       provider_payment_id: str) -> PaymentOut | None:
    """The attempt a provider payment id belongs to, or ``None`` (not created yet)."""
    if not provider_payment_id:
        return None
    row = (await session.scalars(
        select(Payment).where(_by_provider_id(provider, provider_payment_id)))).first()
    return to_out(row) if row is not None else None


async def _lock(session: AsyncSession, provider: str,
                provider_payment_id: str) -> tuple[Order, Payment]:
    order_id = await session.scalar(
        select(Payment.order_id).where(_by_provider_id(provider, provider_payment_id)))
    if order_id is None:
        raise UnknownPaymentAttempt(
            f"no payment attempt {provider}:{provider_payment_id}", param="provider_payment_id")
    order = await lock_order(session, order_id)
    attempt = (await session.scalars(
        select(Payment).where(_by_provider_id(provider, provider_payment_id))
        .with_for_update().execution_options(populate_existing=True))).one()
    return order, attempt


def _flag(row: Order | Payment, name: str, value: object) -> None:
    row.flags = {**(row.flags or {}), name: value}


async def apply_success(session: AsyncSession, order: Order, attempt: Payment, *,
                        amount: int, currency: str, fee_amount: int | None, actor: Actor,
                        cash: bool = False) -> bool:
    """Record captured money on a locked order and attempt (see module docstring)."""
    if attempt.status == PaymentAttemptStatus.SUCCEEDED:
        return False
    now = utcnow()
    currency = (currency or "").upper()
    if amount != attempt.amount or currency != attempt.currency:
        seen = {"amount": amount, "currency": currency,
                "expected_amount": attempt.amount, "expected_currency": attempt.currency}
        if attempt.status == PaymentAttemptStatus.NEEDS_REVIEW and \
                (attempt.flags or {}).get("amount_mismatch") == seen:
            return False
        attempt.status = PaymentAttemptStatus.NEEDS_REVIEW
        _flag(attempt, "amount_mismatch", seen)
        _flag(order, "payment_amount_mismatch", str(attempt.id))
        record(session, AuditLog, actor, "payment.amount_mismatch", "payment", attempt.id,
               {"order_id": str(order.id), **seen})
        await session.flush()
        return True
    other = await session.scalar(select(Payment.id).where(
        Payment.order_id == order.id, Payment.status == PaymentAttemptStatus.SUCCEEDED,
        Payment.id != attempt.id))
    if other is not None:
        if attempt.status == PaymentAttemptStatus.NEEDS_REVIEW:
            return False
        attempt.status = PaymentAttemptStatus.NEEDS_REVIEW
        _flag(attempt, "duplicate_of", str(other))
        _flag(order, "duplicate_payment", str(attempt.id))
        record(session, AuditLog, actor, "payment.duplicate", "payment", attempt.id,
               {"order_id": str(order.id), "succeeded_attempt": str(other), "amount": amount})
        await session.flush()
        return True
    attempt.status = PaymentAttemptStatus.SUCCEEDED
    attempt.succeeded_at = now
    if fee_amount is not None:
        attempt.fee_amount = fee_amount
    attempt.failure_code = attempt.failure_message = None
    await session.flush()  # the one-success-per-order index checks here
    await session.execute(
        update(Payment).where(Payment.order_id == order.id, Payment.id != attempt.id,
                              Payment.status.in_(LIVE_STATUSES))
        .values(status=PaymentAttemptStatus.SUPERSEDED, updated_at=now))
    order.payment_status = PaymentStatus.PAID
    if OrderStatus(order.status) in PAYABLE:
        await move(session, order, OrderStatus.PAID, actor=actor, manual=False, now=now,
                   reason=f"paid via {attempt.provider}", data={"payment_id": str(attempt.id)})
        oversold = await reservations.convert(session, order.id, now)
        if oversold:
            _flag(order, "oversold", oversold)
            record(session, AuditLog, actor, "order.oversold", "order", order.id,
                   {"products": oversold})
    else:
        _flag(order, "paid_while", {"status": order.status, "payment_id": str(attempt.id)})
        record(session, AuditLog, actor, "payment.captured_on_closed_order", "order",
               order.id, {"status": order.status, "payment_id": str(attempt.id)})
    await ledger.post_capture(session, payment_id=attempt.id, order_id=order.id,
                              provider=attempt.provider, currency=attempt.currency,
                              amount=attempt.amount, tax=order.tax, fee=attempt.fee_amount,
                              cash=cash)
    record(session, AuditLog, actor, "payment.succeeded", "payment", attempt.id,
           {"order_id": str(order.id), "provider": attempt.provider, "amount": amount,
            "currency": currency, "fee": attempt.fee_amount})
    await notifications.queue(
        session, recipient=order.customer_email, template="payment_receipt",
        subject=f"Receipt for {order.number}",
        body=f"We received your payment for {order.number}. Thank you.",
        dedupe_key=f"payment_receipt:{order.id}",
        data={"order_id": str(order.id), "amount": amount, "currency": currency})
    await session.flush()
    return True


async def mark_payment_succeeded(session: AsyncSession, *, provider: str,
                                 provider_payment_id: str, amount: int, currency: str,
                                 fee_amount: int | None, actor: Actor) -> bool:
    """The provider captured ``amount``: order → paid, stock deducted, ledger posted.

    Returns True if anything changed. Raises :class:`UnknownPaymentAttempt` (404) if no
    attempt has this provider payment id.
    """
    order, attempt = await _lock(session, provider, provider_payment_id)
    return await apply_success(session, order, attempt, amount=amount, currency=currency,
                               fee_amount=fee_amount, actor=actor)


async def mark_payment_failed(session: AsyncSession, *, provider: str, provider_payment_id: str,
                              failure_code: str | None, failure_message: str | None,
                              actor: Actor) -> bool:
    """The provider refused the payment: order → payment_failed, reservations released.

    A failure for an attempt that already succeeded or failed changes nothing (False).
    """
    order, attempt = await _lock(session, provider, provider_payment_id)
    if attempt.status in (PaymentAttemptStatus.SUCCEEDED, PaymentAttemptStatus.FAILED,
                          PaymentAttemptStatus.NEEDS_REVIEW):
        return False
    was_live = attempt.status in LIVE_STATUSES
    attempt.status = PaymentAttemptStatus.FAILED
    attempt.failure_code = (failure_code or "payment_failed")[:64]
    attempt.failure_message = failure_message
    record(session, AuditLog, actor, "payment.failed", "payment", attempt.id,
           {"order_id": str(order.id), "provider": provider, "failure_code": failure_code})
    if was_live and order.status == OrderStatus.PENDING_PAYMENT:
        await move(session, order, OrderStatus.PAYMENT_FAILED, actor=actor, manual=False,
                   reason=failure_message or failure_code or "payment failed",
                   data={"payment_id": str(attempt.id)})
    await session.flush()
    return True


async def next_attempt_number(session: AsyncSession, order_id: uuid.UUID) -> int:
    latest = await session.scalar(
        select(func.max(Payment.attempt_number)).where(Payment.order_id == order_id))
    return (latest or 0) + 1
