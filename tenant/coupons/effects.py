"""Coupons' settlement effect: a capture turns the order's reserved slot into a
redemption, marks the provider-discount sync that is due, and posts the discount.

One statement for the batch redeems (the slot moves from ``reserved`` to
``times_redeemed`` on the coupon, so the cap holds throughout) and says which syncs are
due: ``pending`` when the coupon links a provider discount and the order was paid through
another provider, else ``not_linked``. The scheduler's ``sync_coupon_discounts`` job hands
pending ones to the worker (:mod:`tenant.coupons.sync`). A redemption already redeemed or
released is not matched: a replayed capture changes nothing, and a late payment on a
cancelled order does not take back a slot that was given away.

The ledger: revenue is recognised at the list price and the discount as contra-revenue
(``discounts``), one balanced posting per order keyed ``coupon.discount:<order>``, so the
balances show gross revenue, discounts and net (see ``docs/coupons.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.sql import sql
from tenant.ledger import accounts
from tenant.ledger.service import Line, Posting, post_many
from tenant.settlement.effects import Captured, Db, Movement, effect

_REDEEM = """
    WITH b AS (
        SELECT DISTINCT ON (order_id) order_id, payment_id, provider, now
        FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
             AS b(order_id, payment_id, provider, now)
        ORDER BY order_id, now
    ),
    r AS (
        UPDATE coupon_redemptions r
        SET status = 'redeemed', redeemed_at = b.now, provider = b.provider,
            updated_at = b.now,
            sync_status = CASE WHEN c.provider_discount_provider IS NULL
                                 OR c.provider_discount_provider = b.provider
                               THEN 'not_linked' ELSE 'pending' END,
            sync_next_at = CASE WHEN c.provider_discount_provider IS NULL
                                  OR c.provider_discount_provider = b.provider
                                THEN NULL ELSE b.now END
        FROM b, coupons c
        WHERE r.order_id = b.order_id AND r.status = 'reserved' AND c.id = r.coupon_id
        RETURNING r.coupon_id, r.order_id, b.payment_id, r.discount, r.currency, c.code
    ),
    counted AS (
        UPDATE coupons c SET reserved = c.reserved - n.n,
                             times_redeemed = c.times_redeemed + n.n, updated_at = now()
        FROM (SELECT coupon_id, count(*) AS n FROM r GROUP BY coupon_id) n
        WHERE c.id = n.coupon_id
    )
    SELECT order_id, payment_id, discount, currency, code FROM r
"""


def discount_posting(row: dict) -> Posting:  # type: ignore[type-arg]
    """The discount an order was given: revenue at list price, less the discount."""
    return Posting(
        key=f"coupon.discount:{row['order_id']}", kind="coupon.discount",
        currency=row["currency"], order_id=row["order_id"], payment_id=row["payment_id"],
        description=f"coupon {row['code']}", data={"coupon_code": row["code"]},
        lines=[Line(accounts.DISCOUNTS, debit=row["discount"]),
               Line(accounts.REVENUE, credit=row["discount"])])


@effect(Movement.CAPTURED, order=5)
async def redeem(db: Db, batch: Sequence[Captured]) -> None:
    """Runs before the stock effects: the coupon row is locked before any product, as
    order creation and cancelling lock them."""
    rows = await (await sql(db)).fetch(
        _REDEEM, [c.order_id for c in batch], [c.payment_id for c in batch],
        [c.provider for c in batch], [c.now for c in batch])
    postings = [discount_posting(dict(r)) for r in rows if r["discount"] > 0]
    if postings:
        await post_many(db, postings)
