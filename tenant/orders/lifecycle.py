"""The one place an order changes state: check the table, apply side effects, audit.

Every caller (the transition and cancel endpoints, payments, the scheduler, later refunds
and disputes) goes through :func:`move`, inside the caller's transaction, so a state
change and its audit row always commit together.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.errors import NotFound
from tenant.audit.models import AuditLog
from tenant.orders import reservations
from tenant.orders.models import Order
from tenant.orders.states import Fulfillment, OrderStatus, PaymentStatus, check
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The order row, locked until the end of the transaction (404 if unknown)."""
    order = (await session.scalars(
        select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True))).first()
    if order is None:
        raise NotFound(f"order {order_id} not found", param="id")
    return order


async def move(session: AsyncSession, order: Order, target: OrderStatus, *, actor: Actor,
               manual: bool, reason: str | None = None, now: datetime | None = None,
               data: dict[str, object] | None = None) -> None:
    """Move a locked order to ``target`` or raise 409 listing the allowed targets."""
    now = now or utcnow()
    source = OrderStatus(order.status)
    check(source, target, Fulfillment(order.fulfillment), manual=manual)
    order.status = target
    order.status_reason = reason
    if target is OrderStatus.PAID:
        order.paid_at = order.paid_at or now
    if target is OrderStatus.PAYMENT_FAILED:
        await reservations.release(session, order.id, now)
        order.payment_status = PaymentStatus.NOT_PAID
    if target is OrderStatus.CANCELLED:
        order.cancelled_at = now
        await reservations.release(session, order.id, now)
        # a checkout still open at the provider can no longer pay this order normally;
        # a late success is still recorded (see tenant.payments.events)
        await session.execute(
            update(Payment).where(Payment.order_id == order.id,
                                  Payment.status.in_(LIVE_STATUSES))
            .values(status=PaymentAttemptStatus.CANCELLED, updated_at=now))
        if order.payment_status == PaymentStatus.PENDING:
            order.payment_status = PaymentStatus.NOT_PAID
    record(session, AuditLog, actor, "order.transitioned", "order", order.id,
           {"from": source.value, "to": target.value, "reason": reason,
            "manual": manual, **(data or {})})
    await session.flush()
