"""Refunds started from Paymesh (SPEC 3a, T11): ``POST /v1/orders/{id}/refunds`` and
``POST /v1/refunds/{id}/mark-refunded``.

A refund is made in three steps, so the amount is never refunded twice nor lost track of:

1. :func:`reserve` — under the order's row lock: what is still refundable (captured −
   refunds pending/succeeded/manual − lost disputes) is checked and the refund row is
   inserted ``pending`` (``manual_required`` for bank transfer and cash), then committed:
   the amount is held, so concurrent refunds never add up past the capture;
2. :func:`send` — the provider is called outside any transaction, with the deterministic
   idempotency key ``{tenant}:refund:{refund id}``: a retry can never refund twice;
3. the provider's answer is recorded in a second transaction: ``succeeded`` (the
   REFUNDED effects run: ledger, ``amount_refunded``, stock, receipt …), ``pending``
   (its webhook completes it later, matched by ``provider_refund_id``), or ``failed``
   (its redacted reason; the amount is refundable again).

A provider that cannot be reached leaves the row ``pending`` with no provider id and the
request answers 503 ``provider_unavailable``: the same request again (same
``Idempotency-Key``) sends it again under the same provider key, which finishes it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.errors import Conflict, NotFound, ServiceUnavailable, UnprocessableError, ValidationError
from core.runtime import Runtime
from core.tenancy import TenantContext
from providers.base import (
    ProviderError,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
)
from providers.offline import OfflineProvider
from tenant.audit.models import AuditLog
from tenant.disputes.models import Dispute
from tenant.disputes.states import DisputeStatus
from tenant.orders.lifecycle import lock_order, move, set_payment_status
from tenant.orders.models import Order, OrderItem
from tenant.orders.states import PAYMENT_STATUS, Fulfillment, OrderStatus, PaymentStatus, edge
from tenant.outgoing import events as outgoing
from tenant.outgoing.events import EventType
from tenant.payments.models import Payment, PaymentAttemptStatus
from tenant.provider_configs import service as provider_configs
from tenant.refunds import service as refunds
from tenant.refunds.models import Refund
from tenant.refunds.schemas import RefundIn, RefundOut
from tenant.refunds.states import HOLDING, REFUND_STATUS, RefundStatus
from tenant.settlement.effects import Movement, Refunded, run_effects

log = logging.getLogger(__name__)


class OrderNotRefundable(Conflict):
    code = "order_not_refundable"


class DisputeOpen(Conflict):
    code = "dispute_open"


class AmountExceedsRefundable(UnprocessableError):
    code = "amount_exceeds_refundable"


class RefundNotManual(Conflict):
    code = "refund_not_manual"


class ProviderUnreachable(ServiceUnavailable):
    code = "provider_unavailable"


def provider_key(tenant: TenantContext, refund_id: uuid.UUID) -> str:
    """The provider idempotency key of a refund: one refund at the provider, ever."""
    return f"{tenant.slug}:refund:{refund_id}"


async def _captured(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    return (await session.scalars(
        select(Payment).where(Payment.order_id == order_id,
                              Payment.status == PaymentAttemptStatus.SUCCEEDED)
        .order_by(Payment.created_at.desc()).limit(1))).first()


async def _items(session: AsyncSession, order: Order, body: RefundIn,
                 payment_id: uuid.UUID) -> list[dict[str, Any]]:
    """The returned items, checked: items of this order, no more units than were bought
    less those other refunds return already."""
    if not body.items:
        return []
    bought = {row.id: row.quantity for row in (await session.scalars(
        select(OrderItem).where(OrderItem.order_id == order.id))).all()}
    returned: dict[str, int] = {}
    for items in (await session.scalars(select(Refund.items).where(
            Refund.payment_id == payment_id,
            Refund.status.in_([s.value for s in HOLDING])))).all():
        for item in items or []:
            returned[item["order_item_id"]] = (returned.get(item["order_item_id"], 0)
                                               + int(item["quantity"]))
    wanted: dict[uuid.UUID, int] = {}
    for i, item in enumerate(body.items):
        if item.order_item_id not in bought:
            raise ValidationError(f"order item {item.order_item_id} is not an item of this "
                                  "order", param=f"items[{i}].order_item_id")
        wanted[item.order_item_id] = wanted.get(item.order_item_id, 0) + item.quantity
    for item_id, quantity in wanted.items():
        left = bought[item_id] - returned.get(str(item_id), 0)
        if quantity > left:
            raise UnprocessableError(
                f"order item {item_id} has {left} unit(s) left to return, not {quantity}",
                code="quantity_exceeds_returnable", param="items")
    return [{"order_item_id": str(k), "quantity": v} for k, v in wanted.items()]


async def reserve(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                  order_id: uuid.UUID, body: RefundIn, *, actor: Actor) -> RefundOut:
    """Step 1: check and hold the amount under the order's lock; the caller commits."""
    order = await lock_order(session, order_id)
    attempt = await _captured(session, order.id)
    if attempt is None:
        raise OrderNotRefundable(f"order {order.number} has no captured payment to refund",
                                 param="id")
    if await session.scalar(select(func.count()).select_from(Dispute).where(
            Dispute.payment_id == attempt.id, Dispute.status == DisputeStatus.OPEN)):
        raise DisputeOpen("the payment has an open dispute: a refund and a chargeback "
                          "would pay the customer twice", param="id")
    left = await refunds.refundable(session, attempt.id, attempt.amount)
    amount = left if body.amount is None else body.amount
    if left <= 0 or amount > left:
        raise AmountExceedsRefundable(
            f"{amount} {attempt.currency} exceeds what is still refundable "
            f"({max(left, 0)} {attempt.currency})", param="amount")
    items = await _items(session, order, body, attempt.id)
    try:
        gateway = await provider_configs.provider_for(runtime, session, tenant,
                                                      attempt.provider)
    except NotFound:
        gateway = None
    manual = gateway is None or isinstance(gateway, OfflineProvider)
    row = Refund(order_id=order.id, payment_id=attempt.id, provider=attempt.provider,
                 amount=amount, currency=attempt.currency,
                 status=RefundStatus.MANUAL_REQUIRED if manual else RefundStatus.PENDING,
                 reason=body.reason, keep_access=body.keep_access, restock=body.restock,
                 items=items)
    session.add(row)
    await session.flush()
    record(session, AuditLog, actor, "refund.created", "refund", row.id,
           {"order_id": str(order.id), "amount": amount, "currency": row.currency,
            "status": row.status, "reason": body.reason, "items": items,
            "keep_access": body.keep_access, "restock": body.restock})
    await session.flush()
    return refunds.to_out(row)


async def send(runtime: Runtime, tenant: TenantContext, refund_id: uuid.UUID, *,
               actor: Actor) -> RefundOut:
    """Steps 2 and 3 for a pending refund not yet answered by its provider (else: the
    refund as it is). 503 ``provider_unavailable`` if the provider cannot be reached."""
    async with runtime.tenant_session(tenant.db_url) as session:
        row = await session.get(Refund, refund_id)
        if row is None:
            raise NotFound(f"refund {refund_id} not found", param="id")
        if row.status != RefundStatus.PENDING or row.provider_refund_id is not None:
            return refunds.to_out(row)
        attempt = await session.get(Payment, row.payment_id)
        assert attempt is not None
        gateway = await provider_configs.provider_for(runtime, session, tenant, row.provider)
        request = RefundRequest(provider_payment_id=attempt.provider_payment_id or "",
                                amount=row.amount, currency=row.currency,
                                idempotency_key=provider_key(tenant, row.id),
                                reason=row.reason)
    result: RefundResult | None = None
    refused: ProviderError | None = None
    try:
        result = await gateway.refund(request)
    except ProviderUnavailable as exc:
        log.warning("refund %s: provider %s unreachable: %s", refund_id, gateway.code,
                    exc.message)
        raise ProviderUnreachable(
            f"{gateway.code} could not be reached; refund {refund_id} stays pending and "
            "holds its amount: send the same request again (same Idempotency-Key) to "
            "finish it", param="provider") from exc
    except ProviderError as exc:  # refused: its message is redacted already
        refused = exc
    async with runtime.tenant_session(tenant.db_url) as session:
        return await _record(session, refund_id, result, refused, actor=actor)


async def _locked(session: AsyncSession, refund_id: uuid.UUID) -> tuple[Order, Refund]:
    found = await session.get(Refund, refund_id)
    if found is None:
        raise NotFound(f"refund {refund_id} not found", param="id")
    order = await lock_order(session, found.order_id)
    row = (await session.scalars(select(Refund).where(Refund.id == refund_id)
                                 .with_for_update()
                                 .execution_options(populate_existing=True))).one()
    return order, row


async def _record(session: AsyncSession, refund_id: uuid.UUID, result: RefundResult | None,
                  refused: ProviderError | None, *, actor: Actor) -> RefundOut:
    """Step 3: the provider's answer, under the order's lock (a webhook may have been
    first: a refund no longer pending is left as it is)."""
    order, row = await _locked(session, refund_id)
    if row.status != RefundStatus.PENDING:
        return refunds.to_out(row)
    now = utcnow()
    if refused is not None or (result is not None and result.state is RefundState.FAILED):
        row.status = REFUND_STATUS.check(row.status, RefundStatus.FAILED)
        row.failure_reason = (refused.message if refused is not None
                              else "the provider refused the refund")[:2000]
        row.completed_at = now
        if result is not None and result.provider_refund_id:
            row.provider_refund_id = result.provider_refund_id
        record(session, AuditLog, actor, "refund.failed", "refund", row.id,
               {"order_id": str(order.id), "code": getattr(refused, "code", None),
                "reason": row.failure_reason})
        await session.flush()
        await outgoing.refunds(session, EventType.REFUND_FAILED, [row.id], now=now)
        return refunds.to_out(row)
    assert result is not None
    row.provider_refund_id = result.provider_refund_id
    if result.state is RefundState.SUCCEEDED:
        await complete(session, order, row, actor=actor, now=now)
    else:
        record(session, AuditLog, actor, "refund.sent", "refund", row.id,
               {"order_id": str(order.id), "provider_refund_id": row.provider_refund_id})
        await session.flush()
    return refunds.to_out(row)


def _money_to(order: Order, target: PaymentStatus) -> None:
    if PAYMENT_STATUS.can(order.payment_status, target):
        set_payment_status(order, target)
    else:
        log.warning("order %s: payment status stays %s (no move to %s)", order.id,
                    order.payment_status, target)


async def complete(session: AsyncSession, order: Order, row: Refund, *, actor: Actor,
                   now: Any) -> None:
    """A refund succeeded: its row, the order's statuses, an audit row, then the REFUNDED
    effects, in the caller's transaction (the order is locked)."""
    refunds.succeed(row, now)
    await session.flush()
    attempt = await session.get(Payment, row.payment_id)
    assert attempt is not None
    total = await refunds.succeeded_total(session, row.payment_id)
    full = total >= attempt.amount
    target = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
    if edge(OrderStatus(order.status), target, Fulfillment(order.fulfillment)) is not None:
        await move(session, order, target, actor=actor, manual=False,
                   reason=f"refund {row.id}")
    _money_to(order, PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED)
    record(session, AuditLog, actor, "refund.succeeded", "refund", row.id,
           {"order_id": str(order.id), "amount": row.amount,
            "provider_refund_id": row.provider_refund_id, "refunded_total": total})
    await session.flush()
    await run_effects(session, Movement.REFUNDED, [movement(row, order, full, actor, now)])


def movement(row: Refund, order: Order, full: bool, actor: Actor, now: Any) -> Refunded:
    return Refunded(
        refund_id=row.id, order_id=row.order_id, payment_id=row.payment_id,
        provider=row.provider, provider_refund_id=row.provider_refund_id, amount=row.amount,
        currency=row.currency, full=full, keep_access=row.keep_access, restock=row.restock,
        actor=actor, now=now,
        items=tuple((uuid.UUID(i["order_item_id"]), int(i["quantity"]))
                    for i in row.items or []),
        customer_email=order.customer_email)


async def mark_refunded(session: AsyncSession, refund_id: uuid.UUID, *,
                        actor: Actor) -> RefundOut:
    """Staff paid a manual refund back: ``manual_required → succeeded`` (409 otherwise)."""
    order, row = await _locked(session, refund_id)
    if row.status != RefundStatus.MANUAL_REQUIRED:
        raise RefundNotManual(f"refund {refund_id} is {row.status}, not a manual refund "
                              "waiting to be marked refunded", param="id")
    record(session, AuditLog, actor, "refund.marked_refunded", "refund", row.id,
           {"order_id": str(order.id), "amount": row.amount})
    await complete(session, order, row, actor=actor, now=utcnow())
    return refunds.to_out(row)
