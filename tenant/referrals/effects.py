"""Commissions' settlement effects (SPEC 3a, **Referrals and commissions**).

- CAPTURED: a paid order that names a referral code earns its referrer a commission
  (``pending``) at the rate of the tier the referrer's revenue reached *before* this order;
  the order's USD value is then added to that revenue and the tier recomputed. The ledger
  posts the commission (expense → ``commissions_payable``) and the referral discount
  (contra-revenue, as coupons post theirs).
- REFUNDED: a full refund cancels a ``pending``/``approved`` commission; a partial one
  reduces its amount pro rata to what is left of the payment. DISPUTE_LOST cancels. Either
  way the order counts only what is left in the referrer's revenue (nothing once
  cancelled or fully refunded), the tier is recomputed and the ledger reverses the
  difference.

Every recomputation happens under the referrer's row lock (``FOR UPDATE`` in the first
statement of each effect, rows in id order so two batches never deadlock): a concurrent
capture or refund of the same referrer waits, then reads the revenue the other one
committed, so no update is lost. Each effect is two statements per batch (the locking
read, then one write of commissions and referrers), plus the ledger's and the outbox's
single statements when there is something to post; a batch without referral orders costs
the one read. A tier change queues a notice to the referrer (once per change, by key).

USD values use the one conversion (:func:`core.fx.apply`) with the rate the FX layers give
at capture (:func:`owner.fx.service.quote`), kept on the commission; later reductions
reuse that stored rate. With no rate in any layer the commission is still created, with
``amount_usd``/``fx_rate``/``fx_source`` null, and adds nothing to the referrer's revenue
(a missing rate never stops a payment from being recorded).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.errors import UnprocessableError
from core.fx import BASE, NATIVE_USD, Quote, Source, apply
from core.money import allocate, percent_of, to_major
from core.sql import columns, sql
from owner.fx import service as fx
from tenant.ledger import accounts
from tenant.ledger.service import Line, Posting, post_many
from tenant.notifications.service import Notice, queue_many
from tenant.referrals import tiers as tier_table
from tenant.referrals.states import OPEN, CommissionStatus
from tenant.settlement.effects import Captured, Db, Disputed, Movement, Refunded, effect

log = logging.getLogger(__name__)

#: The paid orders of the batch that name a referral code and have no commission yet,
#: with their referrer locked (id order) and the tenant's tier table.
_CAPTURED = """
    SELECT b.pos, o.id AS order_id, b.payment_id, b.amount, o.currency, o.referral_discount,
           c.id AS code_id, c.code, r.id AS referrer_id, r.email,
           r.referred_revenue_usd AS revenue, r.tier AS referrer_tier, s.commission_tiers
    FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[])
         AS b(order_id, payment_id, amount, pos)
    JOIN orders o ON o.id = b.order_id AND o.referral_code IS NOT NULL
    JOIN referral_codes c ON lower(c.code) = lower(o.referral_code)
    JOIN referrers r ON r.id = c.referrer_id
    LEFT JOIN tenant_settings s ON s.id = 1
    WHERE NOT EXISTS (SELECT 1 FROM commissions k WHERE k.order_id = o.id)
    ORDER BY r.id, b.pos
    FOR UPDATE OF r
"""

_CREATE = """
    WITH k AS (
        INSERT INTO commissions (id, order_id, payment_id, referral_code_id, referrer_id,
                                 referral_code, referrer_email, base_amount, initial_amount,
                                 amount, currency, rate_percent, tier, amount_usd,
                                 base_amount_usd, revenue_usd, fx_rate, fx_source, status,
                                 created_at, updated_at)
        SELECT k.id, k.order_id, k.payment_id, k.code_id, k.referrer_id, k.code, k.email,
               k.base, k.amount, k.amount, k.currency, k.rate, k.tier, k.amount_usd,
               k.base_usd, COALESCE(k.base_usd, 0), k.fx_rate, k.fx_source,
               '""" + CommissionStatus.PENDING.value + """', k.now, k.now
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                    $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::numeric[],
                    $12::text[], $13::bigint[], $14::bigint[], $15::numeric[], $16::text[],
                    $17::timestamptz[])
             AS k(id, order_id, payment_id, code_id, referrer_id, code, email, base, amount,
                  currency, rate, tier, amount_usd, base_usd, fx_rate, fx_source, now)
        ON CONFLICT (order_id) DO NOTHING
        RETURNING id
    ),
    r AS (
        UPDATE referrers r SET referred_revenue_usd = u.revenue, tier = u.tier,
                               updated_at = u.now
        FROM unnest($18::uuid[], $19::bigint[], $20::text[], $21::timestamptz[])
             AS u(id, revenue, tier, now)
        WHERE r.id = u.id
    )
    SELECT id FROM k
"""

#: The commissions of the batch's orders with their referrer, both locked (referrers in
#: id order, the order each capture locks them in), what the order still has refunded.
_ADJUSTED = """
    SELECT k.id, k.order_id, k.payment_id, k.base_amount, k.initial_amount, k.amount,
           k.currency, k.fx_rate, k.fx_source, k.revenue_usd, k.status, k.referrer_id,
           r.email, r.referred_revenue_usd AS revenue, r.tier AS referrer_tier,
           o.amount_refunded, s.commission_tiers
    FROM commissions k
    JOIN referrers r ON r.id = k.referrer_id
    JOIN orders o ON o.id = k.order_id
    LEFT JOIN tenant_settings s ON s.id = 1
    WHERE k.order_id = ANY($1::uuid[])
    ORDER BY r.id, k.id
    FOR UPDATE OF k, r
"""

_ADJUST = """
    WITH k AS (
        UPDATE commissions k
        SET amount = u.amount, amount_usd = u.amount_usd, revenue_usd = u.revenue_usd,
            status = u.status, cancelled_at = COALESCE(k.cancelled_at, u.cancelled_at),
            updated_at = u.now
        FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                    $6::timestamptz[], $7::timestamptz[])
             AS u(id, amount, amount_usd, revenue_usd, status, cancelled_at, now)
        WHERE k.id = u.id
    )
    UPDATE referrers r SET referred_revenue_usd = u.revenue, tier = u.tier,
                           updated_at = u.now
    FROM unnest($8::uuid[], $9::bigint[], $10::text[], $11::timestamptz[])
         AS u(id, revenue, tier, now)
    WHERE r.id = u.id
"""


@dataclass
class _Referrer:
    """A locked referrer while a batch moves its revenue."""

    id: uuid.UUID
    email: str
    revenue: int
    told_tier: str
    tiers: tuple[tier_table.Tier, ...]
    #: What caused the last change (the notice's key), and when.
    cause: str = ""
    now: Any = None

    @property
    def tier(self) -> tier_table.Tier:
        return tier_table.tier_for(self.revenue, self.tiers)


def _referrers(rows: Sequence[Any]) -> dict[uuid.UUID, _Referrer]:
    tiers = tier_table.of_settings(rows[0]["commission_tiers"]) if rows else ()
    return {row["referrer_id"]: _Referrer(row["referrer_id"], row["email"], row["revenue"],
                                          row["referrer_tier"], tiers) for row in rows}


async def _usd_quotes(currencies: set[str]) -> dict[str, Quote | None]:
    """Each currency's rate per 1 USD from the FX layers (``None``: no layer has one)."""
    quotes: dict[str, Quote | None] = {}
    for currency in sorted(currencies):
        try:
            quotes[currency] = NATIVE_USD if currency == BASE else await fx.quote(currency)
        except UnprocessableError:
            log.warning("no USD rate for %s: commissions in it have no amount_usd and add "
                        "nothing to referred revenue", currency)
            quotes[currency] = None
    return quotes


def _usd(amount: int, quote: Quote | None) -> int | None:
    return None if quote is None else apply(amount, quote, NATIVE_USD).amount


def _stored_quote(row: Any) -> Quote | None:
    """The rate a commission was created with, to value its reductions the same way."""
    if row["fx_rate"] is None:
        return None
    return Quote(row["currency"], Decimal(row["fx_rate"]), Source(row["fx_source"]))


def _commission_lines(amount: int, *, reverse: bool = False) -> list[Line]:
    """Expense against payable (``reverse``: the same, taken back)."""
    if reverse:
        return [Line(accounts.COMMISSIONS_PAYABLE, debit=amount),
                Line(accounts.COMMISSIONS, credit=amount)]
    return [Line(accounts.COMMISSIONS, debit=amount),
            Line(accounts.COMMISSIONS_PAYABLE, credit=amount)]


async def _tell_tier_changes(db: Db, referrers: Sequence[_Referrer]) -> None:
    """Queue a notice to each referrer whose tier changed (once per cause)."""
    await queue_many(db, [Notice(
        recipient=r.email, template="referral_tier_changed",
        subject=f"Your referral tier is now {r.tier.name}",
        body=(f"Your referred revenue is {to_major(r.revenue, BASE)} USD: your tier is now "
              f"{r.tier.name}, with a {r.tier.rate_percent} % commission on the next "
              f"orders you refer."),
        dedupe_key=f"referral_tier:{r.id}:{r.cause}:{r.tier.name}",
        data={"referrer_email": r.email, "tier": r.tier.name, "previous_tier": r.told_tier,
              "referred_revenue_usd": r.revenue, "rate_percent": str(r.tier.rate_percent)})
        for r in referrers if r.tier.name != r.told_tier])


@effect(Movement.CAPTURED, order=60)
async def create_commissions(db: Db, batch: Sequence[Captured]) -> None:
    paid = [c for c in batch if c.paid_order]  # a capture on a closed order earns nothing
    if not paid:
        return
    statements = await sql(db)
    rows = await statements.fetch(_CAPTURED, *columns(
        (c.order_id, c.payment_id, c.amount, pos) for pos, c in enumerate(paid)))
    if not rows:
        return
    now = {c.order_id: c.now for c in paid}
    quotes = await _usd_quotes({row["currency"] for row in rows})
    referrers = _referrers(rows)
    made, postings = [], []
    for row in rows:  # per referrer, in batch order: each order sees the ones before it
        referrer = referrers[row["referrer_id"]]
        tier = referrer.tier  # the tier found before this order
        base, quote = row["amount"], quotes[row["currency"]]
        amount = percent_of(base, tier.rate_percent)
        converted = None if quote is None else apply(base, quote, NATIVE_USD)
        base_usd = converted.amount if converted is not None else None
        referrer.revenue += base_usd or 0
        referrer.cause, referrer.now = f"order:{row['order_id']}", now[row["order_id"]]
        commission_id = uuid.uuid4()
        made.append((commission_id, row["order_id"], row["payment_id"], row["code_id"],
                     referrer.id, row["code"], referrer.email, base, amount, row["currency"],
                     tier.rate_percent, tier.name, _usd(amount, quote), base_usd,
                     converted.rate if converted else None,
                     converted.source.value if converted else None, now[row["order_id"]]))
        postings.append(Posting(
            key=f"commission.created:{row['order_id']}", kind="commission.created",
            currency=row["currency"], order_id=row["order_id"], payment_id=row["payment_id"],
            description=f"referral commission ({row['code']}, {tier.name})",
            data={"commission_id": str(commission_id), "referral_code": row["code"],
                  "tier": tier.name, "rate_percent": str(tier.rate_percent)},
            lines=_commission_lines(amount)))
        if row["referral_discount"] > 0:
            postings.append(Posting(
                key=f"referral.discount:{row['order_id']}", kind="referral.discount",
                currency=row["currency"], order_id=row["order_id"],
                payment_id=row["payment_id"], description=f"referral code {row['code']}",
                data={"referral_code": row["code"]},
                lines=[Line(accounts.DISCOUNTS, debit=row["referral_discount"]),
                       Line(accounts.REVENUE, credit=row["referral_discount"])]))
    moved = list(referrers.values())
    await statements.fetch(_CREATE, *columns(made), *columns(
        (r.id, r.revenue, r.tier.name, r.now) for r in moved))
    await post_many(db, postings)
    await _tell_tier_changes(db, moved)


async def _adjust(db: Db, causes: dict[uuid.UUID, tuple[bool, str, Any]]) -> None:
    """The commissions of the orders in ``causes`` (``order_id → (cancel, cause, now)``)
    follow what the order still keeps: all of it less refunds, or nothing (``cancel``)."""
    statements = await sql(db)
    rows = await statements.fetch(_ADJUSTED, list(causes))
    if not rows:
        return
    referrers = _referrers(rows)
    changed, postings = [], []
    for row in rows:
        cancel, cause, now = causes[row["order_id"]]
        referrer = referrers[row["referrer_id"]]
        base, quote = row["base_amount"], _stored_quote(row)
        left = max(0, base - row["amount_refunded"])
        cancel = cancel or left == 0
        revenue_usd = 0 if cancel or quote is None else min(row["revenue_usd"],
                                                            _usd(left, quote) or 0)
        status, amount = CommissionStatus(row["status"]), row["amount"]
        if status in OPEN:
            if cancel:
                status = CommissionStatus.CANCELLED
                postings.append(Posting(
                    key=f"commission.cancelled:{row['id']}", kind="commission.cancelled",
                    currency=row["currency"], order_id=row["order_id"],
                    payment_id=row["payment_id"], description="referral commission cancelled",
                    data={"commission_id": str(row["id"]), "cause": cause},
                    lines=_commission_lines(amount, reverse=True)))
            else:
                reduced = min(amount, allocate(row["initial_amount"], [left, base - left])[0]
                              if base > 0 else 0)
                postings.append(Posting(
                    key=f"commission.reduced:{row['id']}:{cause}", kind="commission.reduced",
                    currency=row["currency"], order_id=row["order_id"],
                    payment_id=row["payment_id"], description="referral commission reduced",
                    data={"commission_id": str(row["id"]), "cause": cause},
                    lines=_commission_lines(amount - reduced, reverse=True)))
                amount = reduced
        referrer.revenue -= row["revenue_usd"] - revenue_usd
        if row["revenue_usd"] != revenue_usd:
            referrer.cause, referrer.now = cause, now
        changed.append((row["id"], amount, _usd(amount, quote), revenue_usd, status.value,
                        now if status is CommissionStatus.CANCELLED else None, now))
    moved = [r for r in referrers.values() if r.now is not None]
    await statements.execute(_ADJUST, *columns(changed), *(columns(
        (r.id, r.revenue, r.tier.name, r.now) for r in moved) if moved else [[]] * 4))
    await post_many(db, postings)
    await _tell_tier_changes(db, moved)


@effect(Movement.REFUNDED, order=60)
async def follow_refunds(db: Db, batch: Sequence[Refunded]) -> None:
    """After the order's ``amount_refunded`` moved (order 20)."""
    causes: dict[uuid.UUID, tuple[bool, str, Any]] = {}
    for r in batch:
        full = r.full or causes.get(r.order_id, (False,))[0]
        causes[r.order_id] = (full, f"refund:{r.refund_id}", r.now)
    await _adjust(db, causes)


@effect(Movement.DISPUTE_LOST, order=60)
async def cancel_for_lost_disputes(db: Db, batch: Sequence[Disputed]) -> None:
    await _adjust(db, {d.order_id: (True, f"dispute:{d.dispute_id}", d.now) for d in batch})

