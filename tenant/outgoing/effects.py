"""Outgoing webhooks' settlement effects: each batch of money movements writes its
events and their first deliveries in one statement (:mod:`tenant.outgoing.events`).

They run last (after the orders' effects moved the orders), so ``data`` shows each
object as the API shows it once the movement is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenant.outgoing import events
from tenant.outgoing.events import EventType
from tenant.settlement.effects import Captured, Db, Disputed, Movement, Refunded, effect


@effect(Movement.CAPTURED, order=95)
async def order_paid(db: Db, batch: Sequence[Captured]) -> None:
    await events.orders(db, EventType.ORDER_PAID, [c.order_id for c in batch if c.paid_order],
                        now=batch[0].now)


@effect(Movement.REFUNDED, order=95)
async def refund_succeeded(db: Db, batch: Sequence[Refunded]) -> None:
    await events.refunds_and_orders(db, [r.refund_id for r in batch],
                                    [r.order_id for r in batch], [r.full for r in batch],
                                    now=batch[0].now)


@effect(Movement.DISPUTE_OPENED, order=95)
async def dispute_opened(db: Db, batch: Sequence[Disputed]) -> None:
    await events.disputes(db, EventType.DISPUTE_OPENED, [d.dispute_id for d in batch],
                          now=batch[0].now)


@effect(Movement.DISPUTE_WON, order=95)
async def dispute_won(db: Db, batch: Sequence[Disputed]) -> None:
    await events.disputes(db, EventType.DISPUTE_CLOSED, [d.dispute_id for d in batch],
                          now=batch[0].now)


@effect(Movement.DISPUTE_LOST, order=95)
async def dispute_lost(db: Db, batch: Sequence[Disputed]) -> None:
    await events.disputes(db, EventType.DISPUTE_CLOSED, [d.dispute_id for d in batch],
                          now=batch[0].now)
