"""Creating, reading and moving orders; the unpaid auto-cancel job.

Totals are computed here from the products and the tenant's tax rate, never taken from
the client; stock for physical products is reserved in the same transaction.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.errors import NotFound, UnprocessableError, ValidationError
from core.money import normalize_currency, plain_decimal
from tenant.audit.models import AuditLog
from tenant.orders import lifecycle, pricing, reservations
from tenant.orders.models import ORDER_NUMBERS, Order, OrderItem
from tenant.orders.schemas import OrderIn, OrderItemOut, OrderOut
from tenant.orders.states import PAYABLE, Fulfillment, OrderStatus, PaymentStatus, allowed_targets
from tenant.products.models import Product, ProductKind
from tenant.settings import service as settings_service

MAX_METADATA_KEYS = 50
SYSTEM_SCHEDULER = Actor.system("scheduler")


def pay_url(base_url: str, tenant_slug: str, token: str) -> str:
    return f"{base_url}/pay/{tenant_slug}/{token}"


def to_out(order: Order, pay_base: str) -> OrderOut:
    """``pay_base`` is ``{public_url}/pay/{tenant}``."""
    return OrderOut(
        id=str(order.id), number=order.number, status=order.status,
        payment_status=order.payment_status, fulfillment=order.fulfillment,
        currency=order.currency, customer_email=order.customer_email,
        subtotal=order.subtotal, discount=order.discount, tax=order.tax,
        tax_rate=plain_decimal(order.tax_rate),
        total=order.total, original_amount=order.original_amount,
        pay_url=f"{pay_base}/{order.pay_token}",
        items=[OrderItemOut(id=str(i.id), product_id=str(i.product_id) if i.product_id else None,
                            description=i.description, kind=i.kind, quantity=i.quantity,
                            unit_amount=i.unit_amount, amount=i.amount) for i in order.items],
        coupon_code=order.coupon_code, referral_code=order.referral_code,
        metadata=order.meta or {}, flags=order.flags or {},
        allowed_transitions=allowed_targets(OrderStatus(order.status),
                                            Fulfillment(order.fulfillment), manual_only=True),
        status_reason=order.status_reason, paid_at=order.paid_at,
        cancelled_at=order.cancelled_at, created_at=order.created_at,
        updated_at=order.updated_at,
    )


def _check_extras(data: OrderIn) -> None:
    for name in ("coupon_code", "referral_code"):
        if getattr(data, name) is not None:
            raise UnprocessableError(f"{name} is not supported yet", code="not_supported_yet",
                                     param=name)
    if len(data.metadata) > MAX_METADATA_KEYS or any(len(k) > 40 for k in data.metadata):
        raise ValidationError(f"metadata takes at most {MAX_METADATA_KEYS} keys of up to "
                              "40 characters", param="metadata")


async def _build_items(session: AsyncSession, data: OrderIn,
                       currency: str) -> tuple[list[OrderItem], dict[uuid.UUID, int]]:
    """Order lines, and the units to reserve per stock-tracked product."""
    ids = {item.product_id for item in data.items if item.product_id is not None}
    products = {p.id: p for p in (await session.scalars(
        select(Product).where(Product.id.in_(ids)))).all()} if ids else {}
    lines: list[OrderItem] = []
    wanted: dict[uuid.UUID, int] = {}
    for index, item in enumerate(data.items):
        where = f"items[{index}]"
        description = (item.description or "").strip()
        if item.product_id is not None:
            product = products.get(item.product_id)
            if product is None:
                raise ValidationError(f"product {item.product_id} does not exist",
                                      code="unknown_product", param=f"{where}.product_id")
            if not product.active:
                raise ValidationError(f"product {product.id} is not for sale",
                                      code="product_inactive", param=f"{where}.product_id")
            if product.currency != currency:
                raise ValidationError(
                    f"product {product.id} is priced in {product.currency}, the order in "
                    f"{currency}", code="currency_mismatch", param=f"{where}.product_id")
            unit = product.price if item.unit_amount is None else item.unit_amount
            kind, description = product.kind, description or product.name
            if product.stock is not None:
                wanted[product.id] = wanted.get(product.id, 0) + item.quantity
        else:
            if not description:
                raise ValidationError("a line without product_id needs a description",
                                      param=f"{where}.description")
            if item.unit_amount is None:
                raise ValidationError("a line without product_id needs a unit_amount",
                                      param=f"{where}.unit_amount")
            unit, kind = item.unit_amount, ProductKind.SERVICE
        lines.append(OrderItem(position=index, product_id=item.product_id,
                               description=description[:500], kind=kind,
                               quantity=item.quantity, unit_amount=unit,
                               amount=item.quantity * unit))
    return lines, wanted


async def create_order(session: AsyncSession, data: OrderIn, *, actor: Actor,
                       pay_base: str, now: datetime | None = None) -> OrderOut:
    now = now or utcnow()
    currency = normalize_currency(data.currency)
    _check_extras(data)
    lines, wanted = await _build_items(session, data, currency)
    settings = await settings_service.load(session)
    totals = pricing.compute([line.amount for line in lines], settings.tax_rate)
    fulfillment = (Fulfillment.PHYSICAL if any(line.kind == ProductKind.PHYSICAL for line in lines)
                   else Fulfillment.DIRECT)
    number = await session.scalar(select(ORDER_NUMBERS.next_value()))
    order = Order(
        number=f"INV-{number:06d}", pay_token=secrets.token_urlsafe(24),
        status=OrderStatus.PENDING_PAYMENT, payment_status=PaymentStatus.NOT_PAID,
        fulfillment=fulfillment, currency=currency, customer_email=data.customer_email.strip(),
        subtotal=totals.subtotal, discount=totals.discount, tax=totals.tax, total=totals.total,
        original_amount=totals.original_amount, tax_rate=settings.tax_rate,
        coupon_code=None, referral_code=None, meta=dict(data.metadata), flags={}, items=lines,
    )
    session.add(order)
    await session.flush()
    if wanted:
        expires = now + timedelta(minutes=settings.reservation_ttl_minutes)
        await reservations.reserve(session, order.id, wanted, expires)
    record(session, AuditLog, actor, "order.created", "order", order.id,
           {"number": order.number, "total": order.total, "currency": currency,
            "items": len(lines), "reserved": {str(k): v for k, v in wanted.items()}})
    return to_out(order, pay_base)


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found", param="id")
    return order


async def read_order(session: AsyncSession, order_id: uuid.UUID, pay_base: str) -> OrderOut:
    return to_out(await get_order(session, order_id), pay_base)


async def read_by_token(session: AsyncSession, token: str, pay_base: str) -> OrderOut | None:
    """The order behind a payment link, or ``None`` (unknown links are not errors here)."""
    order = (await session.scalars(select(Order).where(Order.pay_token == token))).first()
    return to_out(order, pay_base) if order is not None else None


async def list_orders(session: AsyncSession, *, pay_base: str, page: int, limit: int,
                      status: str | None = None, payment_status: str | None = None,
                      created_from: datetime | None = None, created_to: datetime | None = None,
                      customer_email: str | None = None) -> tuple[list[OrderOut], bool]:
    query = select(Order).order_by(Order.created_at.desc(), Order.id)
    if status is not None:
        if status not in set(OrderStatus):
            raise ValidationError(f"unknown order status '{status}'", param="status")
        query = query.where(Order.status == status)
    if payment_status is not None:
        if payment_status not in set(PaymentStatus):
            raise ValidationError(f"unknown payment status '{payment_status}'",
                                  param="payment_status")
        query = query.where(Order.payment_status == payment_status)
    if created_from is not None:
        query = query.where(Order.created_at >= created_from)
    if created_to is not None:
        query = query.where(Order.created_at < created_to)
    if customer_email:
        query = query.where(Order.customer_email == customer_email)
    rows = list((await session.scalars(query.offset((page - 1) * limit).limit(limit + 1))).all())
    return [to_out(r, pay_base) for r in rows[:limit]], len(rows) > limit


async def transition(session: AsyncSession, order_id: uuid.UUID, to: str, *, actor: Actor,
                     reason: str | None, pay_base: str) -> OrderOut:
    """An admin's move (``POST …/transition``): only the table's manual edges."""
    if to not in set(OrderStatus):
        raise ValidationError(f"'{to}' is not an order status; one of "
                              f"{', '.join(OrderStatus)}", param="to")
    order = await lifecycle.lock_order(session, order_id)
    await lifecycle.move(session, order, OrderStatus(to), actor=actor, manual=True,
                         reason=reason)
    return to_out(order, pay_base)


async def cancel(session: AsyncSession, order_id: uuid.UUID, *, actor: Actor,
                 reason: str | None, pay_base: str) -> OrderOut:
    """Cancel an unpaid order: reservations go back to stock, open checkouts are void."""
    order = await lifecycle.lock_order(session, order_id)
    await lifecycle.move(session, order, OrderStatus.CANCELLED, actor=actor, manual=True,
                         reason=reason or "cancelled by the merchant")
    return to_out(order, pay_base)


async def cancel_unpaid_orders(session: AsyncSession, now: datetime, *, batch: int = 500) -> int:
    """Cancel orders left unpaid longer than the tenant's setting (scheduler job).

    Rows another transaction is working on (a payment arriving) are skipped this run.
    """
    settings = await settings_service.load(session)
    cutoff = now - timedelta(hours=settings.unpaid_auto_cancel_hours)
    due = (await session.scalars(
        select(Order).where(Order.status.in_([s.value for s in PAYABLE]),
                            Order.created_at <= cutoff)
        .order_by(Order.created_at).limit(batch).with_for_update(skip_locked=True))).all()
    for order in due:
        await lifecycle.move(session, order, OrderStatus.CANCELLED, actor=SYSTEM_SCHEDULER,
                             manual=False, now=now,
                             reason=f"unpaid after {settings.unpaid_auto_cancel_hours} h")
    return len(due)
