"""Refund and dispute events reported by providers (the event plumbing of T10).

Each effect is idempotent by its ledger posting key (``refund:<provider>:<refund id>``,
``dispute:<provider>:<dispute id>:opened|won``): a key posted before means the event was
applied before, and nothing else changes. Locks follow the payments convention (order,
then attempt) so these never deadlock with checkout or payment events.

What this does not do yet (it belongs to the refunds/disputes capability, T11/T12):
refunds started from Paymesh, commission reversal, entitlements and stock restoration.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from providers.base import EventType
from tenant.audit.models import AuditLog
from tenant.ledger import accounts
from tenant.ledger.service import Line, post
from tenant.orders.lifecycle import lock_order, move, set_payment_status
from tenant.orders.states import PAYMENT_STATUS, Fulfillment, OrderStatus, PaymentStatus, edge
from tenant.payments.models import Payment

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
        record(session, AuditLog, actor, "refund.failed_at_provider", "order", order.id,
               {"provider_refund_id": event.get("provider_refund_id")})
        return True
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
    refund_id = event.get("provider_refund_id") or event["provider_event_id"]
    amount = int(event.get("amount") or 0)
    already = int((attempt.flags or {}).get("refunded_amount", 0))
    if amount <= 0 or amount > attempt.amount - already:
        raise ValueError(f"refund {refund_id} of {amount} exceeds what is left "
                         f"({attempt.amount - already})")
    posted = await post(
        session, key=f"refund:{attempt.provider}:{refund_id}", kind="refund.succeeded",
        currency=attempt.currency, order_id=order.id, payment_id=attempt.id,
        description=f"{attempt.provider} refund",
        lines=[Line(accounts.REFUNDS, debit=amount),
               Line(accounts.clearing(attempt.provider), credit=amount)])
    if posted is None:
        return False
    total = already + amount
    attempt.flags = {**(attempt.flags or {}), "refunded_amount": total}
    full = total >= attempt.amount
    target = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
    if _go(order, target):
        await move(session, order, target, actor=actor, manual=False,
                   reason=f"refund {refund_id}")
    money = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
    record(session, AuditLog, actor, "refund.succeeded", "order", order.id,
           {"provider_refund_id": refund_id, "amount": amount, "refunded_total": total,
            **_money_to(order, money)})
    return True


async def _dispute_opened(session: AsyncSession, order: Any, attempt: Payment,
                          event: dict[str, Any], actor: Actor) -> bool:
    dispute_id = event.get("provider_dispute_id") or event["provider_event_id"]
    amount = int(event.get("amount") or attempt.amount)
    posted = await post(
        session, key=f"dispute:{attempt.provider}:{dispute_id}:opened", kind="dispute.opened",
        currency=attempt.currency, order_id=order.id, payment_id=attempt.id,
        description=f"{attempt.provider} dispute opened",
        lines=[Line(accounts.DISPUTES, debit=amount),
               Line(accounts.clearing(attempt.provider), credit=amount)])
    if posted is None:
        return False
    disputes = dict((attempt.flags or {}).get("disputes", {}))
    disputes[dispute_id] = {"amount": amount, "before": order.status}
    attempt.flags = {**(attempt.flags or {}), "disputes": disputes}
    if _go(order, OrderStatus.DISPUTED):
        await move(session, order, OrderStatus.DISPUTED, actor=actor, manual=False,
                   reason=f"dispute {dispute_id}")
    record(session, AuditLog, actor, "dispute.opened", "order", order.id,
           {"provider_dispute_id": dispute_id, "amount": amount,
            "reason": (event.get("data") or {}).get("reason"),
            **_money_to(order, PaymentStatus.DISPUTED)})
    return True


async def _dispute_closed(session: AsyncSession, order: Any, attempt: Payment,
                          event: dict[str, Any], actor: Actor) -> bool:
    dispute_id = event.get("provider_dispute_id") or event["provider_event_id"]
    opened = (attempt.flags or {}).get("disputes", {}).get(dispute_id)
    if opened is None:
        raise EventOutOfOrder(f"dispute {dispute_id} closed before it was opened")
    outcome = str((event.get("data") or {}).get("outcome") or "lost").lower()
    won = outcome == "won"
    if order.status != OrderStatus.DISPUTED or dispute_id in (attempt.flags or {}).get(
            "closed_disputes", []):
        return False  # closed before: nothing changes
    if won:  # the provider gives the money back; a lost dispute's money left when it opened
        await post(
            session, key=f"dispute:{attempt.provider}:{dispute_id}:won", kind="dispute.won",
            currency=attempt.currency, order_id=order.id, payment_id=attempt.id,
            description=f"{attempt.provider} dispute won",
            lines=[Line(accounts.clearing(attempt.provider), debit=opened["amount"]),
                   Line(accounts.DISPUTES, credit=opened["amount"])])
    attempt.flags = {**(attempt.flags or {}), "closed_disputes": [
        *(attempt.flags or {}).get("closed_disputes", []), dispute_id]}
    if won:
        before = OrderStatus(opened["before"])
        target = before if _go(order, before) else OrderStatus.PAID
        await move(session, order, target, actor=actor, manual=False,
                   reason=f"dispute {dispute_id} won")
        # back to where the money was: refunds made before the dispute still stand
        refunded = int((attempt.flags or {}).get("refunded_amount", 0))
        money = PaymentStatus.PARTIALLY_REFUNDED if refunded else PaymentStatus.PAID
    else:
        await move(session, order, OrderStatus.REFUNDED, actor=actor, manual=False,
                   reason=f"dispute {dispute_id} lost")
        money = PaymentStatus.REFUNDED
    record(session, AuditLog, actor, f"dispute.{'won' if won else 'lost'}", "order", order.id,
           {"provider_dispute_id": dispute_id, **_money_to(order, money)})
    return True
