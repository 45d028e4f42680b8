"""Inventory reservations (T7): hold stock for unpaid orders without ever overselling.

Every stock change is ONE conditional ``UPDATE`` (``… WHERE stock - reserved >= qty``):
concurrent orders for the last units queue on the product's row lock and each re-checks
the condition against the committed row, so exactly as many succeed as there are units.
No read-modify-write happens in Python, and the ``reserved <= stock`` check constraint on
``products`` backs this up in the database.

Products are always locked in id order, so two orders for the same products cannot
deadlock. Reservations are released on cancel or payment failure, expire after the
tenant's TTL (:func:`expire_reservations`, run by the scheduler) and become a stock
deduction on payment (:func:`convert`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict
from core.sql import Transaction, orm, sql
from tenant.orders.models import Reservation, ReservationStatus


class InsufficientStock(Conflict):
    code = "insufficient_stock"


_RESERVE = text(
    "UPDATE products SET reserved = reserved + :qty, updated_at = now() "
    "WHERE id = :id AND stock IS NOT NULL AND stock - reserved >= :qty RETURNING stock - reserved"
)

_END = """
WITH ended AS (
    UPDATE inventory_reservations SET status = :status, ended_at = :now
    WHERE id = ANY(:ids) AND status = 'active' RETURNING product_id, quantity
), per_product AS (
    SELECT product_id, SUM(quantity) AS quantity FROM ended GROUP BY product_id
), touched AS (
    UPDATE products p SET reserved = p.reserved - e.quantity{stock}, updated_at = now()
    FROM per_product e WHERE p.id = e.product_id RETURNING p.id
)
SELECT product_id FROM ended
"""

_RELEASE = text(_END.format(stock=""))
_CONVERT = text(_END.format(stock=", stock = p.stock - e.quantity"))

_HELD_BY_ORDER = text(
    "SELECT id, product_id FROM inventory_reservations "
    "WHERE order_id = :order_id AND status = 'active' ORDER BY product_id FOR UPDATE"
)
_DUE = text(
    "SELECT id, product_id FROM inventory_reservations WHERE status = 'active' "
    "AND expires_at <= :now ORDER BY expires_at LIMIT :batch FOR UPDATE SKIP LOCKED"
)
_LOCK_PRODUCTS = text("SELECT id FROM products WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")

_TRACKED = text(
    "SELECT oi.product_id, SUM(oi.quantity) FROM order_items oi "
    "JOIN products p ON p.id = oi.product_id "
    "WHERE oi.order_id = :order_id AND p.stock IS NOT NULL GROUP BY oi.product_id"
)
def has_stock_sql(order_id: str) -> str:
    """SQL: whether the order ``order_id`` (an expression) has anything :func:`convert`
    touches: stock-tracked items or live holds. For a caller's query run under the order
    lock (holds are only ever taken under it, so a false here stays false)."""
    return ("(EXISTS (SELECT 1 FROM order_items stock_item JOIN products stock_product "
            "ON stock_product.id = stock_item.product_id "
            f"WHERE stock_item.order_id = {order_id} AND stock_product.stock IS NOT NULL) "
            "OR EXISTS (SELECT 1 FROM inventory_reservations stock_hold "
            f"WHERE stock_hold.order_id = {order_id} AND stock_hold.status = 'active'))")


#: What a payment converts: tracked units (``held`` false) and live holds (true), unlocked.
_TO_CONVERT = (
    "SELECT oi.product_id, SUM(oi.quantity), false FROM order_items oi "
    "JOIN products p ON p.id = oi.product_id "
    "WHERE oi.order_id = $1 AND p.stock IS NOT NULL GROUP BY oi.product_id "
    "UNION ALL "
    "SELECT product_id, quantity, true FROM inventory_reservations "
    "WHERE order_id = $1 AND status = 'active'"
)


async def _held(session: AsyncSession, order_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The order's live holds as (reservation id, product id), rows locked."""
    return [(row[0], row[1]) for row in await session.execute(_HELD_BY_ORDER,
                                                              {"order_id": order_id})]


async def _end(session: AsyncSession, holds: list[tuple[uuid.UUID, uuid.UUID]], now: datetime,
               status: ReservationStatus, *,
               locked: frozenset[uuid.UUID] = frozenset()) -> list[uuid.UUID]:
    """End these holds with ``status``; products are locked in id order first (the order
    every stock change uses), so concurrent releases and reservations cannot deadlock.
    ``locked``: products this transaction already holds locks on."""
    if not holds:
        return []
    products = {p for _, p in holds}
    if not products <= locked:
        await session.execute(_LOCK_PRODUCTS, {"ids": sorted(products)})
    statement = _CONVERT if status is ReservationStatus.CONVERTED else _RELEASE
    result = await session.execute(statement, {"ids": [h for h, _ in holds], "now": now,
                                               "status": status.value})
    return [row[0] for row in result]


async def reserve(session: AsyncSession, order_id: uuid.UUID, wanted: dict[uuid.UUID, int],
                  expires_at: datetime) -> None:
    """Hold ``wanted`` units per product for the order, or raise 409 ``insufficient_stock``.

    The caller's transaction rolls back on the error, undoing any partial holds.
    """
    for product_id in sorted(wanted):
        qty = wanted[product_id]
        left = (await session.execute(_RESERVE, {"id": product_id, "qty": qty})).scalar()
        if left is None:
            raise InsufficientStock(
                f"not enough stock for product {product_id}: {qty} requested",
                param="items", extra={"product_id": str(product_id), "requested": qty})
        session.add(Reservation(order_id=order_id, product_id=product_id, quantity=qty,
                                status=ReservationStatus.ACTIVE, expires_at=expires_at))
    await session.flush()


async def release(session: AsyncSession, order_id: uuid.UUID, now: datetime) -> int:
    """Give the order's held units back (cancel, failed payment). Returns holds ended."""
    return len(await _end(session, await _held(session, order_id), now,
                          ReservationStatus.RELEASED))


async def tracked_quantities(session: AsyncSession, order_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Units per stock-tracked product on the order."""
    rows = (await session.execute(_TRACKED, {"order_id": order_id})).all()
    return {row[0]: int(row[1]) for row in rows}


async def active_products(session: AsyncSession, order_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.execute(text(
        "SELECT product_id FROM inventory_reservations "
        "WHERE order_id = :order_id AND status = 'active'"), {"order_id": order_id})
    return {row[0] for row in rows}


async def hold_for_checkout(session: AsyncSession, order_id: uuid.UUID,
                            expires_at: datetime) -> None:
    """Before a checkout: extend live holds and re-take expired or released ones.

    A customer who comes back after the reservation lapsed gets the units again if they
    are still there, or a 409 before any money moves.
    """
    await session.execute(text(
        "UPDATE inventory_reservations SET expires_at = GREATEST(expires_at, :exp) "
        "WHERE order_id = :order_id AND status = 'active'"),
        {"exp": expires_at, "order_id": order_id})
    held = await active_products(session, order_id)
    missing = {p: q for p, q in (await tracked_quantities(session, order_id)).items()
               if p not in held}
    if missing:
        await reserve(session, order_id, missing, expires_at)


async def convert(db: AsyncSession | Transaction, order_id: uuid.UUID,
                  now: datetime) -> list[str]:
    """Payment captured: held units leave stock for good.

    Units whose hold lapsed are deducted if still available; otherwise the product id is
    returned (oversold) so the caller can flag the order for staff — the money has
    already moved, so refusing the payment is not an option.
    """
    rows = await (await sql(db)).fetch(_TO_CONVERT, order_id)
    if not rows:  # no stock-tracked item, nothing held: nothing to convert
        return []
    session = await orm(db)
    wanted = {row[0]: int(row[1]) for row in rows if not row[2]}
    if wanted:  # every product this may touch, in id order, before touching any
        await session.execute(_LOCK_PRODUCTS, {"ids": sorted(wanted)})
    converted = set(await _end(session, await _held(session, order_id), now,
                               ReservationStatus.CONVERTED, locked=frozenset(wanted)))
    oversold: list[str] = []
    for product_id in sorted(p for p in wanted if p not in converted):
        done = (await session.execute(text(
            "UPDATE products SET stock = stock - :qty, updated_at = now() "
            "WHERE id = :id AND stock IS NOT NULL AND stock - reserved >= :qty RETURNING id"),
            {"id": product_id, "qty": wanted[product_id]})).scalar()
        if done is None:
            oversold.append(str(product_id))
    return oversold


async def expire_reservations(session: AsyncSession, now: datetime, *,
                              batch: int = 1000) -> int:
    """Release holds past their expiry (scheduler job). Returns how many holds expired.

    Rows being converted or released by a payment right now are skipped (``SKIP LOCKED``)
    and picked up next run if still due.
    """
    due = [(row[0], row[1]) for row in await session.execute(_DUE, {"now": now,
                                                                     "batch": batch})]
    return len(await _end(session, due, now, ReservationStatus.EXPIRED))
