"""The one place an order changes state: check the table, apply side effects, audit.

Every caller (the transition and cancel endpoints, payments, the scheduler, later refunds
and disputes) goes through :func:`move`, inside the caller's transaction, so a state
change and its audit row always commit together. A hot path that writes the order row
with a statement of its own (a webhook settling a payment) takes the same check, column
values and audit row from :func:`transition`, for the targets that have no side effects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, audit_row
from core.db import utcnow
from core.errors import NotFound
from tenant.audit.models import AuditLog
from tenant.coupons import service as coupons
from tenant.orders import reservations
from tenant.orders.models import Order
from tenant.outgoing import events as outgoing
from tenant.outgoing.events import EventType
from tenant.orders.states import PAYMENT_STATUS, Fulfillment, OrderStatus, PaymentStatus, check
from tenant.payments.models import Payment, PaymentAttemptStatus
from tenant.payments.states import ATTEMPT_STATUS


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The order row, locked until the end of the transaction (404 if unknown)."""
    order = (await session.scalars(
        select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True))).first()
    if order is None:
        raise NotFound(f"order {order_id} not found", param="id")
    return order


@dataclass(frozen=True, slots=True)
class Transition:
    """A checked move: the order's new column values and its audit row."""

    values: dict[str, Any]
    audit: dict[str, Any]


def transition(order_id: uuid.UUID, source: OrderStatus, target: OrderStatus,
               path: Fulfillment, *, paid_at: datetime | None, actor: Actor, manual: bool,
               reason: str | None, now: datetime,
               data: dict[str, object] | None = None) -> Transition:
    """Check ``source → target`` (409 if not allowed) and say what changes on the row.

    For a locked order whose row the caller writes itself; :func:`move` is the ORM form,
    and the only one for targets with side effects (``payment_failed``, ``cancelled``).
    """
    check(source, target, path, manual=manual)
    values: dict[str, Any] = {"status": target.value, "status_reason": reason}
    if target is OrderStatus.PAID:
        values["paid_at"] = paid_at or now
    audit = audit_row(actor, "order.transitioned", "order", order_id,
                      {"from": source.value, "to": target.value, "reason": reason,
                       "manual": manual, **(data or {})})
    return Transition(values, audit)


async def move(session: AsyncSession, order: Order, target: OrderStatus, *, actor: Actor,
               manual: bool, reason: str | None = None, now: datetime | None = None,
               data: dict[str, object] | None = None) -> None:
    """Move a locked order to ``target`` or raise 409 listing the allowed targets."""
    now = now or utcnow()
    step = transition(order.id, OrderStatus(order.status), target,
                      Fulfillment(order.fulfillment), paid_at=order.paid_at, actor=actor,
                      manual=manual, reason=reason, now=now, data=data)
    for column, value in step.values.items():
        setattr(order, column, value)
    if target is OrderStatus.PAYMENT_FAILED:
        await reservations.release(session, order.id, now)
        if order.payment_status != PaymentStatus.NOT_PAID:
            set_payment_status(order, PaymentStatus.NOT_PAID)
    if target is OrderStatus.CANCELLED:
        order.cancelled_at = now
        # the coupon before the stock: the order every path takes these locks in
        await coupons.release(session, order.id, now)
        await reservations.release(session, order.id, now)
        # a checkout still open at the provider can no longer pay this order normally;
        # a late success is still recorded (see tenant.payments.events)
        cancelled = PaymentAttemptStatus.CANCELLED
        await session.execute(
            update(Payment).where(Payment.order_id == order.id,
                                  Payment.status.in_(ATTEMPT_STATUS.sources(cancelled)))
            .values(status=cancelled, updated_at=now))
        if order.payment_status == PaymentStatus.PENDING:
            set_payment_status(order, PaymentStatus.NOT_PAID)
    session.add(AuditLog(**step.audit))
    await session.flush()
    if target is OrderStatus.CANCELLED:
        await outgoing.orders(session, EventType.ORDER_CANCELLED, [order.id], now=now)


def set_payment_status(order: Order, target: PaymentStatus) -> None:
    """Move a locked order's ``payment_status`` through its table
    (:data:`tenant.orders.states.PAYMENT_STATUS`), or raise 409 listing the allowed
    targets. Callers that ignore rather than refuse an event ask ``PAYMENT_STATUS.can``."""
    order.payment_status = PAYMENT_STATUS.check(order.payment_status, target,
                                                param="payment_status")
