"""Notifications' settlement effects: the customer's receipt goes to the outbox (one
statement per batch; once per order by its dedupe key)."""

from __future__ import annotations

from collections.abc import Sequence

from core.money import to_major
from tenant.notifications.service import Notice, queue_many
from tenant.settlement.effects import Captured, Db, Movement, Refunded, effect


@effect(Movement.CAPTURED, order=90)
async def queue_receipts(db: Db, batch: Sequence[Captured]) -> None:
    await queue_many(db, [Notice(
        recipient=c.customer_email, template="payment_receipt",
        subject=f"Receipt for {c.number}",
        body=f"We received your payment for {c.number}. Thank you.",
        dedupe_key=f"payment_receipt:{c.order_id}",
        data={"order_id": str(c.order_id), "amount": c.amount, "currency": c.currency})
        for c in batch])


@effect(Movement.REFUNDED, order=90)
async def queue_refund_receipts(db: Db, batch: Sequence[Refunded]) -> None:
    """The customer's refund receipt (once per refund)."""
    await queue_many(db, [Notice(
        recipient=r.customer_email, template="refund_receipt",
        subject="Your refund",
        body=f"We refunded {to_major(r.amount, r.currency)} {r.currency} to you.",
        dedupe_key=f"refund_receipt:{r.refund_id}",
        data={"order_id": str(r.order_id), "refund_id": str(r.refund_id),
              "amount": r.amount, "currency": r.currency})
        for r in batch if r.customer_email])
