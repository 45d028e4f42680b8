"""Orders' settlement effects: a capture converts the order's held stock; a refund adds
to the order's ``amount_refunded``."""

from __future__ import annotations

from collections.abc import Sequence

from core import audit
from core.audit import audit_row
from core.sql import columns, json_param, sql
from tenant.orders import reservations
from tenant.orders.models import Order
from tenant.settlement.effects import Captured, Db, Movement, Refunded, effect, sync_loaded

#: Orders whose stock ran out under them are flagged ``oversold`` for staff, audited.
_OVERSOLD = f"""
    WITH {audit.insert_sql(1)}
    UPDATE orders o SET flags = o.flags || jsonb_build_object('oversold', CAST(s.products AS jsonb))
    FROM unnest($11::uuid[], $12::text[]) AS s(order_id, products)
    WHERE o.id = s.order_id
    RETURNING o.id, o.flags
"""
#: Each order's succeeded refunds of the batch, added up.
_REFUNDED = """
    UPDATE orders o SET amount_refunded = o.amount_refunded + r.amount
    FROM (SELECT order_id, SUM(amount) AS amount
          FROM unnest($1::uuid[], $2::bigint[]) AS r(order_id, amount) GROUP BY order_id) r
    WHERE o.id = r.order_id
    RETURNING o.id, o.amount_refunded
"""


@effect(Movement.CAPTURED, order=20)
async def convert_stock(db: Db, batch: Sequence[Captured]) -> None:
    """Held units leave stock for good (only orders that have any: the batch's other
    orders cost nothing). Money already moved, so a shortfall is flagged, not refused."""
    oversold: list[tuple[Captured, list[str]]] = []
    for c in batch:
        if c.paid_order and c.stock:
            products = await reservations.convert(db, c.order_id, c.now)
            if products:
                oversold.append((c, products))
    if not oversold:
        return
    rows = await (await sql(db)).fetch(
        _OVERSOLD, *audit.columns([audit_row(c.actor, "order.oversold", "order", c.order_id,
                                             {"products": products})
                                   for c, products in oversold]),
        *columns((c.order_id, json_param(products)) for c, products in oversold))
    for row in rows:
        sync_loaded(db, Order, row["id"], {"flags": row["flags"]})


@effect(Movement.REFUNDED, order=20)
async def add_refunded(db: Db, batch: Sequence[Refunded]) -> None:
    rows = await (await sql(db)).fetch(_REFUNDED, *columns((r.order_id, r.amount)
                                                           for r in batch))
    for row in rows:
        sync_loaded(db, Order, row["id"], {"amount_refunded": row["amount_refunded"]})
