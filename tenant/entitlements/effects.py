"""Entitlements' settlement effects (SPEC 3a, T15/T12): one statement per batch each.

- CAPTURED: every digital line of a paid order grants one entitlement per unit, with a
  license key drawn in SQL (two ``gen_random_uuid()``: 244 bits from the server's strong
  random source, no extension needed); unique per ``(order_item_id, unit)``, so a replayed
  capture grants nothing twice.
- DISPUTE_OPENED suspends the order's active entitlements; DISPUTE_WON makes the suspended
  ones active again; DISPUTE_LOST revokes them.
- REFUNDED revokes them when the refund leaves nothing to refund (``full``) and does not
  keep access (``keep_access``).

Moves are guarded by :data:`ENTITLEMENT_STATUS` (its sources for the target), so a row in
a status the table does not allow to move is simply not matched.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.sql import sql
from tenant.entitlements.states import ENTITLEMENT_STATUS, EntitlementStatus
from tenant.products.models import ProductKind
from tenant.settlement.effects import Captured, Db, Disputed, Movement, Refunded, effect

_GRANT = f"""
    INSERT INTO entitlements (id, order_id, order_item_id, unit, product_id, customer_email,
                              status, license_key, granted_at, created_at, updated_at)
    SELECT gen_random_uuid(), i.order_id, i.id, u.unit, i.product_id, o.customer_email,
           '{EntitlementStatus.ACTIVE.value}',
           'lic_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
           b.now, b.now, b.now
    FROM unnest($1::uuid[], $2::timestamptz[]) AS b(order_id, now)
    JOIN orders o ON o.id = b.order_id
    JOIN order_items i ON i.order_id = b.order_id
    CROSS JOIN LATERAL generate_series(1, i.quantity) AS u(unit)
    WHERE i.kind = '{ProductKind.DIGITAL.value}' AND i.product_id IS NOT NULL
    ORDER BY i.order_id, i.position, u.unit
    ON CONFLICT (order_item_id, unit) DO NOTHING
"""


def _move_sql(target: EntitlementStatus) -> str:
    """The orders' entitlements (``$1`` order ids, ``$2`` times) → ``target``."""
    revoked_at = "b.now" if target is EntitlementStatus.REVOKED else "e.revoked_at"
    return f"""
        UPDATE entitlements e
        SET status = '{target.value}', revoked_at = {revoked_at}, updated_at = b.now
        FROM (SELECT DISTINCT ON (order_id) order_id, now
              FROM unnest($1::uuid[], $2::timestamptz[]) AS b(order_id, now)
              ORDER BY order_id, now) b
        WHERE e.order_id = b.order_id
          AND e.status = ANY({ENTITLEMENT_STATUS.sources_sql(target)})
    """


_SUSPEND = _move_sql(EntitlementStatus.SUSPENDED)
_RESTORE = _move_sql(EntitlementStatus.ACTIVE)
_REVOKE = _move_sql(EntitlementStatus.REVOKED)


async def _move(db: Db, statement: str, moved: Sequence[Disputed | Refunded]) -> None:
    if moved:
        await (await sql(db)).execute(statement, [m.order_id for m in moved],
                                      [m.now for m in moved])


@effect(Movement.CAPTURED, order=30)
async def grant(db: Db, batch: Sequence[Captured]) -> None:
    paid = [c for c in batch if c.paid_order]  # a capture on a closed order grants nothing
    if paid:
        await (await sql(db)).execute(_GRANT, [c.order_id for c in paid],
                                      [c.now for c in paid])


@effect(Movement.DISPUTE_OPENED, order=30)
async def suspend(db: Db, batch: Sequence[Disputed]) -> None:
    await _move(db, _SUSPEND, batch)


@effect(Movement.DISPUTE_WON, order=30)
async def restore(db: Db, batch: Sequence[Disputed]) -> None:
    await _move(db, _RESTORE, batch)


@effect(Movement.DISPUTE_LOST, order=30)
async def revoke_lost(db: Db, batch: Sequence[Disputed]) -> None:
    await _move(db, _REVOKE, batch)


@effect(Movement.REFUNDED, order=30)
async def revoke_refunded(db: Db, batch: Sequence[Refunded]) -> None:
    await _move(db, _REVOKE, [r for r in batch if r.full and not r.keep_access])
