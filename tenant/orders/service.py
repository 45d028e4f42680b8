"""Creating, reading and moving orders; the unpaid auto-cancel job.

Totals are computed here from the products and the tenant's tax rate, never taken from
the client; stock for physical products is reserved in the same transaction.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor, audit_row
from core.db import fetch_page, utcnow, where_state
from core.errors import NotFound, ValidationError
from core.money import normalize_currency, plain_decimal
from core.runtime import Runtime
from core.sql import Transaction, json_param, orm, sql
from core.tenancy import TenantContext
from tenant.coupons import service as coupons
from tenant.orders import lifecycle, pricing, reservations
from tenant.outgoing import events as outgoing
from tenant.outgoing.events import EventType
from tenant.orders.models import Order
from tenant.orders.schemas import OrderIn, OrderItemOut, OrderOut
from tenant.orders.states import PAYABLE, Fulfillment, OrderStatus, PaymentStatus, allowed_targets
from tenant.products.models import ProductKind
from tenant.provider_configs import service as provider_configs
from tenant.provider_configs import snapshots
from tenant.provider_configs.snapshots import CONFIGS_VERSION_SQL
from tenant.referrals import service as referrals
from tenant.settings import service as settings_service
from tenant.settings.models import DEFAULT_RESERVATION_TTL_MINUTES

MAX_METADATA_KEYS = 50
SYSTEM_SCHEDULER = Actor.system("scheduler")


def pay_url(base_url: str, tenant_slug: str, token: str) -> str:
    return f"{base_url}/pay/{tenant_slug}/{token}"


def to_out(order: Order | SimpleNamespace, pay_base: str) -> OrderOut:
    """``pay_base`` is ``{public_url}/pay/{tenant}``; ``order`` is a row or anything with
    its attributes (a new order, before it is read back)."""
    return OrderOut(
        id=str(order.id), number=order.number, status=order.status,
        payment_status=order.payment_status, fulfillment=order.fulfillment,
        currency=order.currency, customer_email=order.customer_email,
        subtotal=order.subtotal, discount=order.discount,
        referral_discount=getattr(order, "referral_discount", 0) or 0, tax=order.tax,
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
        amount_refunded=getattr(order, "amount_refunded", 0) or 0,
    )


def _check_extras(data: OrderIn) -> None:
    if len(data.metadata) > MAX_METADATA_KEYS or any(len(k) > 40 for k in data.metadata):
        raise ValidationError(f"metadata takes at most {MAX_METADATA_KEYS} keys of up to "
                              "40 characters", param="metadata")


#: The products an order names, the tenant's settings and the version of its provider
#: configurations (one row even without products).
_FOR_ORDER = f"""
SELECT p.id, p.name, p.kind, p.price, p.currency, p.stock, p.active,
       s.tax_rate, s.reservation_ttl_minutes, ({CONFIGS_VERSION_SQL}) AS configs_version
FROM (SELECT 1) AS one
LEFT JOIN tenant_settings s ON s.id = 1
LEFT JOIN products p ON p.id = ANY($1::uuid[])
"""

#: The order with its number (``INV-000042``), its lines and its audit row: one statement.
#: The number comes from the counter row, in this transaction: an order that is refused
#: later (stock, …) rolls it back with everything else, so numbers have no gaps. The row
#: stays locked until the transaction ends, so a tenant's orders are numbered one at a time.
_INSERT_ORDER = f"""
WITH seq AS (UPDATE invoice_counter SET last_number = last_number + 1 WHERE id = 1
             RETURNING last_number AS n),
o AS (
    INSERT INTO orders (id, number, pay_token, status, payment_status, fulfillment, currency,
                        customer_email, subtotal, discount, tax, total, original_amount,
                        tax_rate, metadata, flags, created_at, updated_at)
    SELECT $1, 'INV-' || CASE WHEN n < 1000000 THEN lpad(n::text, 6, '0') ELSE n::text END,
           $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16
    FROM seq
    RETURNING id, number
),
lines AS (
    INSERT INTO order_items (id, order_id, position, product_id, description, kind, quantity,
                             unit_amount, amount)
    SELECT l.id, o.id, l.position, l.product_id, l.description, l.kind, l.quantity,
           l.unit_amount, l.amount
    FROM o, unnest($17::uuid[], $18::int[], $19::uuid[], $20::text[], $21::text[], $22::int[],
                   $23::bigint[], $24::bigint[])
         AS l(id, position, product_id, description, kind, quantity, unit_amount, amount)
),
{audit.insert_sql(25, data="CAST(a.data AS jsonb) || jsonb_build_object('number', o.number)",
                  join="o")}
SELECT number FROM o
"""


def _build_items(data: OrderIn, currency: str, products: dict[uuid.UUID, Any]
                 ) -> tuple[list[SimpleNamespace], dict[uuid.UUID, int]]:
    """Order lines (``OrderItem`` attributes), and the units to reserve per stock-tracked
    product."""
    lines: list[SimpleNamespace] = []
    wanted: dict[uuid.UUID, int] = {}
    for index, item in enumerate(data.items):
        where = f"items[{index}]"
        description = (item.description or "").strip()
        if item.product_id is not None:
            product = products.get(item.product_id)
            if product is None:
                raise ValidationError(f"product {item.product_id} does not exist",
                                      code="unknown_product", param=f"{where}.product_id")
            if not product["active"]:
                raise ValidationError(f"product {product['id']} is not for sale",
                                      code="product_inactive", param=f"{where}.product_id")
            if product["currency"] != currency:
                raise ValidationError(
                    f"product {product['id']} is priced in {product['currency']}, the order "
                    f"in {currency}", code="currency_mismatch", param=f"{where}.product_id")
            unit = product["price"] if item.unit_amount is None else item.unit_amount
            kind, description = product["kind"], description or product["name"]
            if product["stock"] is not None:
                wanted[item.product_id] = wanted.get(item.product_id, 0) + item.quantity
        else:
            if not description:
                raise ValidationError("a line without product_id needs a description",
                                      param=f"{where}.description")
            if item.unit_amount is None:
                raise ValidationError("a line without product_id needs a unit_amount",
                                      param=f"{where}.unit_amount")
            unit, kind = item.unit_amount, ProductKind.SERVICE
        lines.append(SimpleNamespace(id=uuid.uuid4(), position=index,
                                     product_id=item.product_id,
                                     description=description[:500], kind=kind,
                                     quantity=item.quantity, unit_amount=unit,
                                     amount=item.quantity * unit))
    return lines, wanted


async def options_for(runtime: Runtime, tenant: TenantContext,
                      configs: Sequence[Any], outs: list[OrderOut]) -> list[OrderOut]:
    """``outs`` with their ``payment_options`` (see :class:`OrderOut`)."""
    payable = [o for o in outs if OrderStatus(o.status) in PAYABLE and o.total > 0]
    options = await provider_configs.payment_options(
        runtime, tenant, configs, [(o.currency, o.total) for o in payable])
    return [msgspec.structs.replace(o, payment_options=options.get((o.currency, o.total), []))
            for o in outs]


async def _with_options(runtime: Runtime | None, tenant: TenantContext | None,
                        session: AsyncSession, outs: list[OrderOut]) -> list[OrderOut]:
    if runtime is None or tenant is None:
        return outs
    return await options_for(runtime, tenant, await provider_configs.list_configs(session), outs)


async def create_order(db: AsyncSession | Transaction, data: OrderIn, *, actor: Actor,
                       pay_base: str, now: datetime | None = None,
                       runtime: Runtime | None = None,
                       tenant: TenantContext | None = None) -> OrderOut:
    """One read (products, settings) and one write (order, lines, audit row) in the
    request's transaction, plus the holds when a product's stock is tracked."""
    now = now or utcnow()
    currency = normalize_currency(data.currency)
    _check_extras(data)
    statements = await sql(db)
    ids = list({item.product_id for item in data.items if item.product_id is not None})
    rows = await statements.fetch(_FOR_ORDER, ids)
    products = {row["id"]: row for row in rows if row["id"] is not None}
    lines, wanted = _build_items(data, currency, products)
    tax_rate = Decimal(rows[0]["tax_rate"] if rows[0]["tax_rate"] is not None else 0)
    ttl = rows[0]["reservation_ttl_minutes"] or DEFAULT_RESERVATION_TTL_MINUTES
    # the coupon is read here (a 422 before anything is written); its slot is taken once
    # the order row exists (the redemption refers to it), re-checking every condition
    # under the coupon's row lock, held until COMMIT (lock order: counter, coupon, stock)
    coupon = (None if data.coupon_code is None
              else await coupons.find_for_order(statements, data.coupon_code, currency, now))
    amounts = [line.amount for line in lines]
    discount = coupon.discount_on(sum(amounts)) if coupon is not None else 0
    # the referral discount comes off what the coupon left (docs/referrals.md)
    referral = (None if data.referral_code is None
                else await referrals.find_for_order(statements, data.referral_code,
                                                    data.customer_email))
    referral_discount = (referral.discount_on(sum(amounts) - discount)
                         if referral is not None else 0)
    totals = pricing.compute(amounts, tax_rate, discount + referral_discount)
    fulfillment = (Fulfillment.PHYSICAL if any(line.kind == ProductKind.PHYSICAL for line in lines)
                   else Fulfillment.DIRECT)
    # the new row's attributes (not an ORM object: it is written with one statement below)
    order = SimpleNamespace(
        id=uuid.uuid4(), number=None, pay_token=secrets.token_urlsafe(24),
        status=OrderStatus.PENDING_PAYMENT, payment_status=PaymentStatus.NOT_PAID,
        fulfillment=fulfillment, currency=currency, customer_email=data.customer_email.strip(),
        subtotal=totals.subtotal, discount=totals.discount, tax=totals.tax, total=totals.total,
        original_amount=totals.original_amount, tax_rate=tax_rate,
        coupon_code=coupon.code if coupon is not None else None,
        referral_code=referral.code if referral is not None else None,
        referral_discount=referral_discount,
        meta=dict(data.metadata), flags={}, items=lines,
        status_reason=None, paid_at=None, cancelled_at=None, created_at=now, updated_at=now,
    )
    # the providers that can take it, read before the number is taken: the counter row
    # stays locked from the insert below to COMMIT, so nothing slow belongs after it
    options: list[str] | None = None
    if runtime is not None and tenant is not None:
        configs = await snapshots.configs_at(db, tenant, rows[0]["configs_version"])
        options = [] if order.total <= 0 else (await provider_configs.payment_options(
            runtime, tenant, configs, [(currency, order.total)]))[(currency, order.total)]
    entry = audit_row(actor, "order.created", "order", order.id,
                      {"total": order.total, "currency": currency, "items": len(lines),
                       "reserved": {str(k): v for k, v in wanted.items()},
                       **({"coupon_code": coupon.code, "discount": discount}
                          if coupon is not None else {}),
                       **({"referral_code": referral.code,
                           "referral_discount": referral_discount}
                          if referral is not None else {})})
    order.number = await statements.fetchval(
        _INSERT_ORDER, order.id, order.pay_token, order.status, order.payment_status,
        order.fulfillment, currency, order.customer_email, order.subtotal, order.discount,
        order.tax, order.total, order.original_amount, tax_rate, json_param(order.meta),
        json_param(order.flags), now,
        [line.id for line in lines], [line.position for line in lines],
        [line.product_id for line in lines], [line.description for line in lines],
        [line.kind for line in lines], [line.quantity for line in lines],
        [line.unit_amount for line in lines], [line.amount for line in lines],
        *audit.columns([entry]))
    if coupon is not None:
        await coupons.reserve(statements, coupon, order.id, discount, currency, now)
    if referral is not None:
        await referrals.apply_to_order(statements, referral, order.id, referral_discount)
    if wanted:
        expires = now + timedelta(minutes=ttl)
        await reservations.reserve(await orm(db), order.id, wanted, expires)
    await outgoing.orders(db, EventType.ORDER_CREATED, [order.id], now=now)
    out = to_out(order, pay_base)
    return out if options is None else msgspec.structs.replace(out, payment_options=options)


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found", param="id")
    return order


async def read_order(session: AsyncSession, order_id: uuid.UUID, pay_base: str, *,
                     runtime: Runtime | None = None,
                     tenant: TenantContext | None = None) -> OrderOut:
    out = to_out(await get_order(session, order_id), pay_base)
    return (await _with_options(runtime, tenant, session, [out]))[0]


async def read_by_token(session: AsyncSession, token: str, pay_base: str) -> OrderOut | None:
    """The order behind a payment link, or ``None`` (unknown links are not errors here)."""
    order = (await session.scalars(select(Order).where(Order.pay_token == token))).first()
    return to_out(order, pay_base) if order is not None else None


async def list_orders(session: AsyncSession, *, pay_base: str, page: int, limit: int,
                      status: str | None = None, payment_status: str | None = None,
                      created_from: datetime | None = None, created_to: datetime | None = None,
                      customer_email: str | None = None, provider: str | None = None,
                      runtime: Runtime | None = None, tenant: TenantContext | None = None,
                      ) -> tuple[list[OrderOut], bool]:
    query = select(Order).order_by(Order.created_at.desc(), Order.id)
    if provider is not None:
        # orders with a payment attempt at that provider (any outcome)
        from tenant.payments.models import Payment

        if not provider or len(provider) > 32:
            raise ValidationError("provider must be a provider code", param="provider")
        query = query.where(Order.id.in_(
            select(Payment.order_id).where(Payment.provider == provider)))
    query = where_state(query, Order.status, status, OrderStatus, "status")
    query = where_state(query, Order.payment_status, payment_status, PaymentStatus,
                        "payment_status")
    if created_from is not None:
        query = query.where(Order.created_at >= created_from)
    if created_to is not None:
        query = query.where(Order.created_at < created_to)
    if customer_email:
        query = query.where(Order.customer_email == customer_email)
    rows, more = await fetch_page(session, query, page, limit)
    return await _with_options(runtime, tenant, session, [to_out(r, pay_base) for r in rows]), more


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
