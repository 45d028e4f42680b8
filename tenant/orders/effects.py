"""Orders' settlement effects: a capture converts the order's held stock; a refund adds
to the order's ``amount_refunded`` and brings the units it returns back into stock."""

from __future__ import annotations

from collections.abc import Sequence

from core import audit
from core.audit import audit_row
from core.sql import columns, json_param, sql
from tenant.orders import reservations
from tenant.orders import sql as orders_sql
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
_REFUNDED = orders_sql.add_amounts("amount_refunded")


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


#: Units back into stock: the items a refund returns, and every item of a full refund
#: that names none (less the units earlier refunds returned); only stock-tracked physical
#: products. Products locked in id order first.
_RESTOCK_LOCK = """
    SELECT p.id FROM products p WHERE p.id IN (
        SELECT oi.product_id FROM order_items oi
        WHERE oi.id = ANY($1::uuid[]) OR oi.order_id = ANY($2::uuid[]))
    ORDER BY p.id FOR UPDATE
"""
_RESTOCK = """
    WITH wanted AS (
        SELECT oi.product_id, w.quantity
        FROM unnest($1::uuid[], $3::int[]) AS w(item_id, quantity)
        JOIN order_items oi ON oi.id = w.item_id
        UNION ALL
        SELECT oi.product_id, oi.quantity - COALESCE(back.quantity, 0)
        FROM order_items oi
        LEFT JOIN (SELECT (e->>'order_item_id')::uuid AS item_id,
                          SUM((e->>'quantity')::int) AS quantity
                   FROM refunds r CROSS JOIN jsonb_array_elements(r.items) e
                   WHERE r.order_id = ANY($2::uuid[]) AND r.status = 'succeeded'
                   GROUP BY 1) back ON back.item_id = oi.id
        WHERE oi.order_id = ANY($2::uuid[])
    ), per_product AS (
        SELECT w.product_id, SUM(w.quantity) AS quantity FROM wanted w
        JOIN products p ON p.id = w.product_id
        WHERE p.stock IS NOT NULL AND p.kind = 'physical' GROUP BY w.product_id
        HAVING SUM(w.quantity) > 0
    )
    UPDATE products p SET stock = p.stock + r.quantity, updated_at = now()
    FROM per_product r WHERE p.id = r.product_id
    RETURNING p.id
"""


@effect(Movement.REFUNDED, order=30)
async def restock_returned(db: Db, batch: Sequence[Refunded]) -> None:
    """The units a refund returns come back (``items``; every item of a full refund
    without items); nothing unless ``restock``, nothing for a partial refund without
    items."""
    items = [item for r in batch if r.restock for item in r.items]
    whole = [r.order_id for r in batch if r.restock and r.full and not r.items]
    if not items and not whole:
        return
    statements = await sql(db)
    ids = [item_id for item_id, _ in items]
    await statements.fetch(_RESTOCK_LOCK, ids, whole)
    await statements.fetch(_RESTOCK, ids, whole, [quantity for _, quantity in items])
