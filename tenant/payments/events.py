"""Settling payment attempts: success, failure, cash. Called by webhooks, reconciliation,
the payment page and the mark-paid endpoint — all in the caller's transaction.

Every function here is idempotent (status checks under row locks) and order-independent
(a failure reported after a success changes nothing; a success after a failure still
applies, as a retried card can succeed). Locks are taken order first, then attempt,
everywhere, so a checkout and a webhook for the same order cannot deadlock.

Money that moved but cannot be applied normally is never dropped: an amount mismatch or a
second successful charge marks the attempt ``needs_review`` and flags the order for staff,
and a payment for an already cancelled order is recorded (and posted) with a flag.

Recording a success is :func:`tenant.payments.settle.settle_success` (prebuilt SQL, as
every settling webhook runs it); the functions here lock the rows and hand them over, for
one capture or for a worker's batch of them (:func:`mark_payments_succeeded`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.sql import Transaction, flush, sql
from tenant.audit.models import AuditLog
from tenant.orders import reservations
from tenant.orders.lifecycle import lock_order, move
from tenant.orders.models import Order
from tenant.orders.states import OrderStatus
from tenant.payments.errors import UnknownPaymentAttempt
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus
from tenant.payments.schemas import PaymentOut
from tenant.payments.settle import Capture, Locked, settle_success, settle_successes
from tenant.payments.states import ATTEMPT_STATUS


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


@dataclass(frozen=True, slots=True)
class Captured:
    """A provider's word that it captured money for one of its payments."""

    provider: str
    provider_payment_id: str
    amount: int | None
    currency: str | None
    fee_amount: int | None = None

    def on(self, locked: Locked) -> Capture:
        """This capture, to settle on its locked order and attempt."""
        return Capture(locked, self.amount, self.currency, self.fee_amount)


#: The orders of attempts (given as arrays of providers and provider payment ids),
#: row-locked in id order (orders first: see the module docstring).
_LOCK_ORDERS = """
    SELECT id, number, status, status_reason, fulfillment, tax, customer_email, paid_at,
           flags, payment_status
    FROM orders
    WHERE id IN (SELECT p.order_id
                 FROM payments p
                 JOIN unnest($1::text[], $2::text[]) AS c(provider, payment_id)
                   ON p.provider = c.provider AND p.provider_payment_id = c.payment_id)
    ORDER BY id
    FOR UPDATE
"""
#: Then the attempts, row-locked in id order, with what else settling needs to know of
#: each order: any other attempt that already succeeded, and whether it has stock to
#: convert (read once the order lock is held, so neither can change any more).
_LOCK_ATTEMPTS = f"""
    SELECT p.id, p.order_id, p.provider, p.provider_payment_id, p.status, p.amount,
           p.currency, p.fee_amount, p.flags,
           (SELECT s.id FROM payments s
            WHERE s.order_id = p.order_id AND s.status = 'succeeded' AND s.id <> p.id
            LIMIT 1) AS other,
           {reservations.has_stock_sql("p.order_id")} AS stock
    FROM payments p
    JOIN unnest($1::text[], $2::text[]) AS c(provider, payment_id)
      ON p.provider = c.provider AND p.provider_payment_id = c.payment_id
    ORDER BY p.id
    FOR UPDATE OF p
"""


async def _lock(db: AsyncSession | Transaction,
                keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Locked]:
    """The orders and attempts of ``(provider, provider payment id)`` keys, row-locked;
    keys without an attempt are left out."""
    statements = await sql(db)
    providers, payment_ids = [k[0] for k in keys], [k[1] for k in keys]
    orders = {row["id"]: row for row in
              await statements.fetch(_LOCK_ORDERS, providers, payment_ids)}
    attempts = await statements.fetch(_LOCK_ATTEMPTS, providers, payment_ids) if orders else []
    locked = {}
    for attempt in attempts:
        order = orders.get(attempt["order_id"])
        if order is None:  # the attempt was stored after the orders were read
            continue
        locked[(attempt["provider"], attempt["provider_payment_id"])] = Locked(
            order_id=order["id"], number=order["number"], order_status=order["status"],
            status_reason=order["status_reason"], fulfillment=order["fulfillment"],
            tax=order["tax"], customer_email=order["customer_email"],
            paid_at=order["paid_at"], order_flags=order["flags"] or {},
            payment_status=order["payment_status"],
            attempt_id=attempt["id"], attempt_status=attempt["status"],
            amount=attempt["amount"], currency=attempt["currency"],
            provider=attempt["provider"], fee_amount=attempt["fee_amount"],
            attempt_flags=attempt["flags"] or {}, other_succeeded=attempt["other"],
            stock=attempt["stock"])
    return locked


async def _lock_orm(session: AsyncSession, provider: str,
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


async def apply_success(session: AsyncSession, order: Order, attempt: Payment, *,
                        amount: int, currency: str, fee_amount: int | None, actor: Actor,
                        cash: bool = False) -> bool:
    """Record captured money on a locked order and attempt (see module docstring); the
    objects show the result afterwards. True if anything changed."""
    await session.flush()  # the caller's pending changes first
    other = await session.scalar(select(Payment.id).where(
        Payment.order_id == order.id, Payment.status == PaymentAttemptStatus.SUCCEEDED,
        Payment.id != attempt.id))
    locked = Locked(
        order_id=order.id, number=order.number, order_status=order.status,
        status_reason=order.status_reason, fulfillment=order.fulfillment, tax=order.tax,
        customer_email=order.customer_email,
        paid_at=order.paid_at, order_flags=order.flags or {},
        payment_status=order.payment_status, attempt_id=attempt.id,
        attempt_status=attempt.status, amount=attempt.amount, currency=attempt.currency,
        provider=attempt.provider, fee_amount=attempt.fee_amount,
        attempt_flags=attempt.flags or {}, other_succeeded=other)
    return await settle_success(session, locked, amount=amount, currency=currency,
                                fee_amount=fee_amount, actor=actor, cash=cash)


async def mark_payment_succeeded(db: AsyncSession | Transaction, *, provider: str,
                                 provider_payment_id: str, amount: int | None,
                                 currency: str | None, fee_amount: int | None,
                                 actor: Actor) -> bool:
    """The provider captured ``amount``: order → paid, stock deducted, ledger posted.

    Returns True if anything changed. Raises :class:`UnknownPaymentAttempt` (404) if no
    attempt has this provider payment id.
    """
    changed, = await mark_payments_succeeded(
        db, [Captured(provider, provider_payment_id, amount, currency, fee_amount)],
        actor=actor)
    if changed is None:
        raise UnknownPaymentAttempt(
            f"no payment attempt {provider}:{provider_payment_id}", param="provider_payment_id")
    return changed


async def mark_payments_succeeded(db: AsyncSession | Transaction,
                                  captures: Sequence[Captured], *,
                                  actor: Actor) -> list[bool | None]:
    """:func:`mark_payment_succeeded` for several captures, as if one after the other: for
    each, whether anything changed, or None when no attempt has its payment id (nothing
    is written for it). Their rows are locked and settled together; a capture whose order
    comes up again in the batch is settled afterwards, on what the first one left."""
    await flush(db)  # plain SQL from here on
    keys = [(c.provider, c.provider_payment_id) for c in captures]
    locked = await _lock(db, keys)
    first, again = [], []  # positions: each order's first capture, then any other
    orders: set[uuid.UUID] = set()
    for position, key in enumerate(keys):
        if key in locked:
            (again if locked[key].order_id in orders else first).append(position)
            orders.add(locked[key].order_id)
    changed: list[bool | None] = [None] * len(captures)
    settled = await settle_successes(
        db, [captures[position].on(locked[keys[position]]) for position in first], actor=actor)
    for position, result in zip(first, settled, strict=True):
        changed[position] = result
    for position in again:  # locked again: what the first capture of its order wrote
        fresh = await _lock(db, [keys[position]])
        changed[position], = await settle_successes(
            db, [captures[position].on(fresh[keys[position]])], actor=actor)
    return changed


async def mark_payment_failed(session: AsyncSession, *, provider: str, provider_payment_id: str,
                              failure_code: str | None, failure_message: str | None,
                              actor: Actor) -> bool:
    """The provider refused the payment: order → payment_failed, reservations released.

    A failure the attempt table refuses (the attempt succeeded, failed or is kept for
    review) changes nothing (False).
    """
    order, attempt = await _lock_orm(session, provider, provider_payment_id)
    if not ATTEMPT_STATUS.can(attempt.status, PaymentAttemptStatus.FAILED):
        return False  # settled or failed before: a late failure never un-pays
    was_live = attempt.status in LIVE_STATUSES
    attempt.status = ATTEMPT_STATUS.check(attempt.status, PaymentAttemptStatus.FAILED)
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
