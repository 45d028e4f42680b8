"""Refund and dispute events reported by providers: rows of ``refunds``/``disputes``.

Each event is idempotent by its row, unique per provider id (``provider_refund_id``,
``provider_dispute_id``): a row already in the event's status means the event was applied
before, and nothing else changes. Statuses move through the refund and dispute tables
(:mod:`tenant.refunds.states`, :mod:`tenant.disputes.states`); the order moves here; what
else follows (ledger postings, ``amount_refunded`` …) are the effects registered for the
movement (:mod:`tenant.settlement.effects`), run in the same transaction. Locks follow the
payments convention (order, then attempt) so these never deadlock with checkout or
payment events.

A refund Paymesh started (:mod:`tenant.refunds.issue`) is matched by its
``provider_refund_id``, or, when its provider's answer is not recorded yet, as the one
pending refund of the payment with no provider id and the event's amount.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.sql import flush
from providers.base import EventType
from tenant.audit.models import AuditLog
from tenant.disputes import service as disputes
from tenant.disputes.models import Dispute
from tenant.disputes.states import DISPUTE_STATUS, DisputeStatus
from tenant.orders.lifecycle import lock_order, move, set_payment_status
from tenant.orders.states import PAYMENT_STATUS, Fulfillment, OrderStatus, PaymentStatus, edge
from tenant.outgoing import events as outgoing
from tenant.outgoing.events import EventType
from tenant.payments.models import Payment
from tenant.refunds import service as refunds
from tenant.refunds.models import Refund
from tenant.refunds.states import REFUND_STATUS, RefundStatus
from tenant.settlement.effects import Disputed, Movement, Refunded, run_effects

log = logging.getLogger(__name__)


class EventOutOfOrder(Exception):
    """The event needs something that has not happened yet (retried later)."""


async def apply_money_event(session: AsyncSession, *, attempt_id: object,
                            event: dict[str, Any], actor: Actor) -> bool:
    """Apply a refund or dispute event to its (succeeded) payment; True if it changed."""
    attempt = await session.get(Payment, attempt_id)
    order = await lock_order(session, attempt.order_id)  # type: ignore[union-attr]
    attempt = (await session.scalars(select(Payment).where(Payment.id == attempt_id)
                                     .with_for_update()
                                     .execution_options(populate_existing=True))).one()
    kind = EventType(event["type"])
    if kind is EventType.REFUND_SUCCEEDED:
        return await _refund(session, order, attempt, event, actor)
    if kind is EventType.REFUND_FAILED:
        return await _refund_failed(session, order, attempt, event, actor)
    if kind is EventType.DISPUTE_OPENED:
        return await _dispute_opened(session, order, attempt, event, actor)
    return await _dispute_closed(session, order, attempt, event, actor)


def _go(order: Any, target: OrderStatus) -> bool:
    return edge(OrderStatus(order.status), target, Fulfillment(order.fulfillment)) is not None


def _money_to(order: Any, target: PaymentStatus) -> dict[str, str]:
    """``payment_status → target`` where the table allows it. A provider event is not
    refused (the money moved, the ledger has it): a move the table forbids is left
    undone, logged, and named in the event's audit row (``payment_status_kept``)."""
    if PAYMENT_STATUS.can(order.payment_status, target):
        set_payment_status(order, target)
        return {}
    log.warning("order %s: payment status stays %s (the table has no move to %s)",
                order.id, order.payment_status, target)
    return {"payment_status_kept": str(order.payment_status),
            "payment_status_refused": target.value}


async def _refund(session: AsyncSession, order: Any, attempt: Payment, event: dict[str, Any],
                  actor: Actor) -> bool:
    named = event.get("provider_refund_id")
    refund_id = named or _provider_reference(event)
    now = utcnow()
    row = await refunds.by_provider_id(session, attempt.provider, refund_id)
    if row is None and not named:  # the webhook names no refund id: payment + amount
        row = await refunds.pending_of(session, attempt.id, int(event.get("amount") or 0))
        if row is not None:
            refund_id = row.provider_refund_id or refund_id
            row.provider_refund_id = refund_id
    if row is None:  # one we sent whose answer is not recorded yet (tenant.refunds.issue)
        row = await refunds.unanswered(session, attempt.id, int(event.get("amount") or 0))
        if row is not None:
            row.provider_refund_id = refund_id
    if row is not None and not REFUND_STATUS.can(row.status, RefundStatus.SUCCEEDED):
        return False  # succeeded (or ended) before: nothing changes
    amount = row.amount if row is not None else int(event.get("amount") or 0)
    left = await refunds.refundable(session, attempt.id, attempt.amount,
                                    besides=row.id if row is not None else None)
    if amount <= 0 or amount > left:
        raise ValueError(f"refund {refund_id} of {amount} exceeds what is left ({left})")
    if row is None:  # started at the provider (its dashboard): recorded as it reports
        row = Refund(order_id=order.id, payment_id=attempt.id, provider=attempt.provider,
                     amount=amount, currency=attempt.currency,
                     status=REFUND_STATUS.check(RefundStatus.PENDING, RefundStatus.SUCCEEDED),
                     reason=_text((event.get("data") or {}).get("reason"), 500),
                     keep_access=False, restock=False, provider_refund_id=refund_id,
                     completed_at=now)
        session.add(row)
    else:
        refunds.succeed(row, now)
    await session.flush()
    total = await refunds.succeeded_total(session, attempt.id)
    full = total >= attempt.amount
    if order.payment_status == PaymentStatus.DISPUTED:
        # sent before the dispute opened, completed while it is open: the order stays
        # disputed; the dispute's closing settles its status from what was refunded
        kept: dict[str, Any] = {"dispute_open": True}
    else:
        target = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
        if _go(order, target):
            await move(session, order, target, actor=actor, manual=False,
                       reason=f"refund {refund_id}")
        kept = _money_to(order, PaymentStatus.REFUNDED if full
                         else PaymentStatus.PARTIALLY_REFUNDED)
    record(session, AuditLog, actor, "refund.succeeded", "order", order.id,
           {"refund_id": str(row.id), "provider_refund_id": refund_id, "amount": amount,
            "refunded_total": total, **kept})
    # the refund's own trail ends where the provider said it did
    record(session, AuditLog, actor, "refund.succeeded", "refund", row.id,
           {"provider_refund_id": refund_id, "amount": amount, "by": "webhook"})
    await flush(session)
    await run_effects(session, Movement.REFUNDED, [Refunded(
        refund_id=row.id, order_id=order.id, payment_id=attempt.id, provider=attempt.provider,
        provider_refund_id=refund_id, amount=amount, currency=attempt.currency, full=full,
        keep_access=row.keep_access, restock=row.restock, actor=actor, now=now,
        items=tuple((uuid.UUID(i["order_item_id"]), int(i["quantity"]))
                    for i in row.items or []),
        customer_email=order.customer_email)])
    return True


async def _refund_failed(session: AsyncSession, order: Any, attempt: Payment,
                         event: dict[str, Any], actor: Actor) -> bool:
    """A refund the provider could not pay out: a pending one fails; one that succeeded
    stays so (the order and ledger followed it): that is for staff, audited."""
    refund_id = event.get("provider_refund_id")
    row = await refunds.by_provider_id(session, attempt.provider, refund_id) \
        if refund_id else None
    if row is None and not refund_id and event.get("amount"):  # no id: payment + amount
        row = await refunds.pending_of(session, attempt.id, int(event["amount"]))
        refund_id = row.provider_refund_id if row is not None else None
    failed = row is not None and REFUND_STATUS.can(row.status, RefundStatus.FAILED)
    if failed:
        assert row is not None
        row.status = REFUND_STATUS.check(row.status, RefundStatus.FAILED)
        row.failure_reason = _text((event.get("data") or {}).get("failure_message")
                                   or (event.get("data") or {}).get("failure_code"), 2000)
        row.completed_at = utcnow()
        await session.flush()
        await outgoing.refunds(session, EventType.REFUND_FAILED, [row.id])
    record(session, AuditLog, actor, "refund.failed_at_provider", "order", order.id,
           {"provider_refund_id": refund_id,
            "refund_id": str(row.id) if row is not None else None,
            "refund_status": row.status if row is not None else None})
    if row is not None:
        record(session, AuditLog, actor, "refund.failed_at_provider", "refund", row.id,
               {"provider_refund_id": refund_id, "refund_status": row.status})
    return True


async def _dispute_opened(session: AsyncSession, order: Any, attempt: Payment,
                          event: dict[str, Any], actor: Actor) -> bool:
    dispute_id = event.get("provider_dispute_id") or event["provider_event_id"]
    if await disputes.by_provider_id(session, attempt.provider, dispute_id) is not None:
        return False  # opened before
    data = event.get("data") or {}
    amount = int(event.get("amount") or attempt.amount)
    now = utcnow()
    before = str(order.status)
    if order.status == OrderStatus.DISPUTED:  # another is open: where that one returns
        earlier, _ = await disputes.others_on(session, attempt.id)
        if earlier is not None and earlier.order_status_before:
            before = earlier.order_status_before
    row = Dispute(order_id=order.id, payment_id=attempt.id, provider=attempt.provider,
                  provider_dispute_id=dispute_id, amount=amount, currency=attempt.currency,
                  reason=_text(data.get("reason"), 200), status=DisputeStatus.OPEN,
                  order_status_before=before,
                  evidence_due_by=disputes.due_by(data.get("evidence_due_by")),
                  opened_at=now)
    session.add(row)
    if _go(order, OrderStatus.DISPUTED):
        await move(session, order, OrderStatus.DISPUTED, actor=actor, manual=False,
                   reason=f"dispute {dispute_id}")
    record(session, AuditLog, actor, "dispute.opened", "order", order.id,
           {"provider_dispute_id": dispute_id, "amount": amount,
            "reason": data.get("reason"), **_money_to(order, PaymentStatus.DISPUTED)})
    await flush(session)
    await run_effects(session, Movement.DISPUTE_OPENED, [_disputed(row, actor, now)])
    return True


async def _dispute_closed(session: AsyncSession, order: Any, attempt: Payment,
                          event: dict[str, Any], actor: Actor) -> bool:
    dispute_id = event.get("provider_dispute_id") or event["provider_event_id"]
    row = await disputes.by_provider_id(session, attempt.provider, dispute_id)
    if row is None:
        raise EventOutOfOrder(f"dispute {dispute_id} closed before it was opened")
    outcome = str((event.get("data") or {}).get("outcome") or "lost").lower()
    won = outcome == "won"
    target_status = DisputeStatus.WON if won else DisputeStatus.LOST
    if not DISPUTE_STATUS.can(row.status, target_status):
        return False  # closed before: nothing changes
    now = utcnow()
    row.status = DISPUTE_STATUS.check(row.status, target_status)
    row.closed_at = now
    await session.flush()
    # the order stays disputed while another dispute of the payment is open (events of
    # two disputes can interleave), and is refunded when the last closes if one was lost
    still_open, lost = await disputes.others_on(session, attempt.id)
    kept: dict[str, Any] = {"disputes_still_open": True} if still_open is not None else {}
    if order.status == OrderStatus.DISPUTED and still_open is None:
        if not lost:
            # back to where the money is: refunds made before the dispute still stand, and
            # so do refunds sent before it that completed while it was open
            refunded = await refunds.succeeded_total(session, attempt.id)
            if refunded >= attempt.amount:
                fallback, money = OrderStatus.REFUNDED, PaymentStatus.REFUNDED
            elif refunded:
                fallback, money = OrderStatus.PARTIALLY_REFUNDED, \
                    PaymentStatus.PARTIALLY_REFUNDED
            else:
                fallback, money = OrderStatus.PAID, PaymentStatus.PAID
            before = OrderStatus(row.order_status_before or fallback)
            if refunded and before not in (OrderStatus.PARTIALLY_REFUNDED,
                                           OrderStatus.REFUNDED):
                before = fallback  # a refund completed during the dispute
            target = before if _go(order, before) else fallback
            await move(session, order, target, actor=actor, manual=False,
                       reason=f"dispute {dispute_id} won")
        else:
            await move(session, order, OrderStatus.REFUNDED, actor=actor, manual=False,
                       reason=f"dispute {dispute_id} won, another lost"
                       if won else f"dispute {dispute_id} lost")
            money = PaymentStatus.REFUNDED
        kept = _money_to(order, money)
    record(session, AuditLog, actor, f"dispute.{'won' if won else 'lost'}", "order", order.id,
           {"provider_dispute_id": dispute_id, **kept})
    await flush(session)
    fee = None if won else _fee(event.get("fee_amount"))
    await run_effects(session, Movement.DISPUTE_WON if won else Movement.DISPUTE_LOST,
                      [_disputed(row, actor, now, fee)])
    return True


def _disputed(row: Dispute, actor: Actor, now: Any, fee: int | None = None) -> Disputed:
    return Disputed(dispute_id=row.id, order_id=row.order_id, payment_id=row.payment_id,
                    provider=row.provider, provider_dispute_id=row.provider_dispute_id,
                    amount=row.amount, currency=row.currency, actor=actor, now=now, fee=fee)


def _fee(value: object) -> int | None:
    """A provider's dispute fee in minor units (positive integers only), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def _provider_reference(event: dict[str, Any]) -> str:
    """A refund's key when its webhook names no refund id: the provider's own reference
    (Paystack's ``refund_reference``), else the event id."""
    reference = (event.get("data") or {}).get("refund_reference")
    return str(reference) if reference else event["provider_event_id"]


def _text(value: object, limit: int) -> str | None:
    return str(value)[:limit] if value else None
