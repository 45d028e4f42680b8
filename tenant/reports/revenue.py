"""The revenue report (T17, SPEC 3a): summed in SQL per original currency and group key,
then each group converted once with the FX service's quotes (never order by order).

Two sources compute the same native sums per ``(currency, key)``:

- ``orders``: each paid order carries its total, discount, tax, ``amount_refunded``,
  ``dispute_losses``, the paying provider and its fee (kept at settlement, migration 0014);
  closed days come from their per-day roll-up (``report_days``, kept exact by a dirty-day
  trigger, ``tenant/reports/rollup.py``), the rest from index range scans of
  ``ix_orders_paid_report``;
- ``ledger``: the journal postings of those same orders, summed per account.

Both attribute everything that happens to an order (a refund next month, a lost dispute)
to the period its payment was captured in (``orders.paid_at``): a cohort view, which is
what makes gross, refunds and net of the same orders comparable, and what lets the two
sources agree to the cent. Every figure is then converted with the same quotes, group by
group, so agreeing native sums give equal reports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import UTC, date, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from core.errors import ValidationError
from core.money import normalize_currency, round_minor
from core.period import Period, prorate_monthly
from core.sql import Sql
from owner.fx.batch import Converter
from tenant.reports.schemas import RevenueGroup, RevenueReport, RevenueTotals


class GroupBy(StrEnum):
    PROVIDER = "provider"
    DAY = "day"
    CURRENCY = "currency"


class Source(StrEnum):
    ORDERS = "orders"
    LEDGER = "ledger"


E = TypeVar("E", bound=StrEnum)


def choice(kind: type[E], value: str, param: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(v.value for v in kind)  # type: ignore[attr-defined]
        raise ValidationError(f"{param} must be one of: {allowed}", param=param) from None


@dataclass(slots=True)
class Sums:
    """Native sums of one ``(currency, key)`` group (minor units of that currency)."""

    gross: int = 0
    discounts: int = 0
    refunds: int = 0
    disputes_lost: int = 0
    provider_fees: int = 0
    #: Zero until the marketplace (T16) posts platform fees.
    platform_fees: int = 0
    commissions: int = 0
    tax: int = 0
    orders: int = 0

    def add(self, other: Sums) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


MONEY = tuple(f.name for f in fields(Sums) if f.name != "orders")

#: SQL for the group key of each ``group_by`` (orders source; ``o`` is ``orders``).
_KEY = {
    GroupBy.PROVIDER: "COALESCE(o.paid_provider, 'unknown')",
    GroupBy.DAY: "to_char(o.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    GroupBy.CURRENCY: "o.currency",
}

#: The orders source's figures over orders ``o``, in ``report_days``' column order: the
#: live scan, the split statement and the roll-up (``rollup.py``) all sum with this, so
#: they cannot drift apart.
ORDER_SUMS = """count(*) AS orders, COALESCE(sum(o.total), 0) AS gross,
           COALESCE(sum(o.discount), 0) AS discounts, COALESCE(sum(o.tax), 0) AS tax,
           COALESCE(sum(o.amount_refunded), 0) AS refunds,
           COALESCE(sum(o.dispute_losses), 0) AS disputes_lost,
           COALESCE(sum(o.provider_fee), 0) AS provider_fees"""

_ORDERS_SQL = f"""
    SELECT o.currency, {{key}} AS key, {ORDER_SUMS}
    FROM orders o
    WHERE o.paid_at IS NOT NULL AND o.paid_at >= $1 AND o.paid_at < $2
    GROUP BY 1, 2
"""

_CAPTURES = "('payment.captured', 'payment.cash_received')"

#: The same figures from the journal: every posting of the period's paid orders, summed
#: per order and account, then per currency and key. Only the period (which orders) is
#: read from ``orders``; every amount is a ledger entry.
_LEDGER_SQL = f"""
    WITH paid AS (
        SELECT o.id, o.paid_at FROM orders o
        WHERE o.paid_at IS NOT NULL AND o.paid_at >= $1 AND o.paid_at < $2
    ),
    per_order AS (
        SELECT t.order_id, e.currency,
               bool_or(t.kind IN {_CAPTURES}) AS captured,
               max(t.data ->> 'provider') FILTER (WHERE t.kind IN {_CAPTURES}) AS provider,
               sum(CASE WHEN t.kind IN {_CAPTURES} AND a.code IN ('revenue', 'tax_payable')
                        THEN e.credit - e.debit ELSE 0 END) AS gross,
               sum(CASE WHEN a.code = 'discounts' THEN e.debit - e.credit ELSE 0 END)
                   AS discounts,
               sum(CASE WHEN a.code = 'refunds' THEN e.debit - e.credit ELSE 0 END) AS refunds,
               sum(CASE WHEN a.code = 'dispute_losses' THEN e.debit - e.credit ELSE 0 END)
                   AS disputes_lost,
               sum(CASE WHEN a.code = 'provider_fees' THEN e.debit - e.credit ELSE 0 END)
                   AS provider_fees,
               sum(CASE WHEN a.code = 'platform_fees' THEN e.debit - e.credit ELSE 0 END)
                   AS platform_fees,
               sum(CASE WHEN a.code = 'commissions' THEN e.debit - e.credit ELSE 0 END)
                   AS commissions,
               sum(CASE WHEN t.kind IN {_CAPTURES} AND a.code = 'tax_payable'
                        THEN e.credit - e.debit ELSE 0 END) AS tax
        FROM paid
        JOIN ledger_transactions t ON t.order_id = paid.id
        JOIN ledger_entries e ON e.transaction_id = t.id
        JOIN ledger_accounts a ON a.id = e.account_id
        GROUP BY t.order_id, e.currency
    )
    SELECT p.currency, {{key}} AS key, count(*) FILTER (WHERE p.captured) AS orders,
           sum(p.gross) AS gross, sum(p.discounts) AS discounts, sum(p.tax) AS tax,
           sum(p.refunds) AS refunds, sum(p.disputes_lost) AS disputes_lost,
           sum(p.provider_fees) AS provider_fees, sum(p.platform_fees) AS platform_fees,
           sum(p.commissions) AS commissions
    FROM per_order p JOIN paid ON paid.id = p.order_id
    GROUP BY 1, 2
"""
_LEDGER_KEY = {
    GroupBy.PROVIDER: "COALESCE(p.provider, 'unknown')",
    GroupBy.DAY: "to_char(paid.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    GroupBy.CURRENCY: "p.currency",
}

Grouped = dict[tuple[str, str], Sums]


def _sums(row: object) -> Sums:
    get = row.get  # type: ignore[attr-defined]
    return Sums(**{name: int(get(name) or 0) for name in (f.name for f in fields(Sums))})


#: SQL for the group key of each ``group_by`` over the roll-up (``r`` is ``report_days``).
_ROLLED_KEY = {
    GroupBy.PROVIDER: "r.provider",
    GroupBy.DAY: "to_char(r.day, 'YYYY-MM-DD')",
    GroupBy.CURRENCY: "r.currency",
}

#: The period's whole UTC days [$3, $4) that are rolled up and not dirty are read from
#: ``report_days``; the rest of [$1, $2) — before and after the rolled span, and its dirty
#: days — live from ``orders``, each part an index range scan. One statement, so the
#: roll-up's state and both parts are read in one snapshot: a roll-up committing meanwhile
#: can neither be counted twice nor missed (``tenant/reports/rollup.py``).
_SPLIT_SQL = f"""
    WITH span AS (
        SELECT $3::date AS lo, GREATEST($3::date, LEAST($4::date, COALESCE(
                   (SELECT rolled_until FROM report_rollup_state WHERE id = 1), $3::date)))
               AS hi
    ),
    dirty AS (
        SELECT d.day FROM report_dirty_days d, span
        WHERE d.day >= span.lo AND d.day < span.hi
    ),
    live (lo, hi) AS (
        SELECT $1::timestamptz, span.lo::timestamp AT TIME ZONE 'UTC' FROM span
        UNION ALL
        SELECT span.hi::timestamp AT TIME ZONE 'UTC', $2::timestamptz FROM span
        UNION ALL
        SELECT day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC'
        FROM dirty
    ),
    parts AS (
        SELECT o.currency, {{key}} AS key, {ORDER_SUMS}
        FROM live JOIN orders o ON o.paid_at >= live.lo AND o.paid_at < live.hi
        WHERE o.paid_at IS NOT NULL
        GROUP BY 1, 2
        UNION ALL
        SELECT r.currency, {{rolled_key}}, sum(r.orders), sum(r.gross), sum(r.discounts),
               sum(r.tax), sum(r.refunds), sum(r.disputes_lost), sum(r.provider_fees)
        FROM report_days r, span
        WHERE r.day >= span.lo AND r.day < span.hi
          AND NOT EXISTS (SELECT 1 FROM dirty WHERE dirty.day = r.day)
        GROUP BY 1, 2
    )
    SELECT currency, key, sum(orders) AS orders, COALESCE(sum(gross), 0) AS gross,
           COALESCE(sum(discounts), 0) AS discounts, COALESCE(sum(tax), 0) AS tax,
           COALESCE(sum(refunds), 0) AS refunds,
           COALESCE(sum(disputes_lost), 0) AS disputes_lost,
           COALESCE(sum(provider_fees), 0) AS provider_fees
    FROM parts
    GROUP BY 1, 2
"""


def whole_days(period: Period) -> tuple[date, date] | None:
    """The UTC days [first, end) that lie wholly inside the period, if any."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    first = start.date() if start.time() == time() else start.date() + timedelta(days=1)
    last = end.date()
    return (first, last) if first < last else None


async def from_orders(db: Sql, period: Period, group_by: GroupBy) -> Grouped:
    """Closed days from the roll-up where it has them, the rest live: the same sums as
    ``_ORDERS_SQL`` over the whole period (``tenant/reports/rollup.py``)."""
    # The planner cannot know how many orders the live ranges hold and may price the
    # statement high enough for JIT, whose compiling (~400 ms measured) would cost more
    # than the whole answer: off for this transaction only.
    await db.execute("SET LOCAL jit = off")
    days = whole_days(period)
    rolled_until = await db.fetchval(
        "SELECT rolled_until FROM report_rollup_state WHERE id = 1")
    if days is None or rolled_until is None or rolled_until <= days[0]:
        # nothing of the period is rolled up (less than a whole day, or none of its days
        # yet): one scan of the index, which may run in parallel, answers it, and reads
        # no roll-up, so one that commits meanwhile changes nothing
        rows = await db.fetch(_ORDERS_SQL.format(key=_KEY[group_by]), period.start,
                              period.end)
    else:
        rows = await db.fetch(_SPLIT_SQL.format(key=_KEY[group_by],
                                                rolled_key=_ROLLED_KEY[group_by]),
                              period.start, period.end, *days)
    grouped = {(r["currency"], r["key"]): _sums(dict(r)) for r in rows}
    await add_commissions(db, period, group_by, grouped)
    return grouped


_COMMISSIONS_SQL = """
    SELECT o.currency, {key} AS key, COALESCE(sum(c.amount), 0) AS commissions
    FROM commissions c JOIN orders o ON o.id = c.order_id
    WHERE c.status <> 'cancelled'
      AND o.paid_at IS NOT NULL AND o.paid_at >= $1 AND o.paid_at < $2
    GROUP BY 1, 2
"""


async def add_commissions(db: Sql, period: Period, group_by: GroupBy,
                          grouped: Grouped) -> None:
    """Each group's referral commissions: what is owed or paid on the period's orders
    (``amount`` of commissions not ``cancelled``, already reduced by partial refunds), in
    the order's currency. The ledger source reads the same from the ``commissions``
    expense account (debited on creation, credited on reduction or cancellation; a payout
    only moves ``commissions_payable``)."""
    rows = await db.fetch(_COMMISSIONS_SQL.format(key=_KEY[group_by]),
                          period.start, period.end)
    for r in rows:
        grouped.setdefault((r["currency"], r["key"]), Sums()).commissions += int(
            r["commissions"])


async def from_ledger(db: Sql, period: Period, group_by: GroupBy) -> Grouped:
    rows = await db.fetch(_LEDGER_SQL.format(key=_LEDGER_KEY[group_by]),
                          period.start, period.end)
    return {(r["currency"], r["key"]): _sums(dict(r)) for r in rows}


def convert_groups(grouped: Grouped, convert: Converter) -> dict[str, Sums]:
    """Each ``(currency, key)`` group converted once (each figure rounded once), then the
    groups of a key added up in the reporting currency."""
    out: dict[str, Sums] = defaultdict(Sums)
    for (currency, key), native in sorted(grouped.items()):
        converted = Sums(orders=native.orders, **{
            name: convert(getattr(native, name), currency) for name in MONEY})
        out[key].add(converted)
    return dict(out)


def net_of(s: Sums) -> int:
    return (s.gross - s.refunds - s.disputes_lost - s.provider_fees - s.platform_fees
            - s.commissions - s.tax)


@dataclass(frozen=True, slots=True)
class OperatingCosts:
    monthly: int = 0
    currency: str | None = None


async def build(db: Sql, period: Period, *, group_by: GroupBy, currency: str,
                source: Source, costs: OperatingCosts) -> RevenueReport:
    currency = normalize_currency(currency)
    grouped = await (from_orders if source is Source.ORDERS else from_ledger)(
        db, period, group_by)
    convert = Converter(currency)
    needed = {c for c, _ in grouped}
    prorated = prorate_monthly(costs.monthly, period) if costs.currency else 0
    if prorated:
        needed.add(costs.currency)  # type: ignore[arg-type]
    await convert.load(needed)
    per_key = convert_groups(grouped, convert)
    totals = Sums()
    for sums in per_key.values():
        totals.add(sums)
    operating = convert(prorated, costs.currency) if prorated else 0  # type: ignore[arg-type]
    aov = round_minor(Decimal(totals.gross) / totals.orders) if totals.orders else 0
    groups = [RevenueGroup(key=key, gross=s.gross, refunds=s.refunds, net=net_of(s),
                           orders=s.orders) for key, s in sorted(per_key.items())]
    return RevenueReport(
        currency=currency, from_=period.start, to=period.end,
        totals=RevenueTotals(
            gross=totals.gross, discounts=totals.discounts, refunds=totals.refunds,
            disputes_lost=totals.disputes_lost, provider_fees=totals.provider_fees,
            platform_fees=totals.platform_fees, commissions=totals.commissions,
            tax=totals.tax, operating_costs=operating, net=net_of(totals) - operating,
            orders=totals.orders, average_order_value=aov),
        groups=groups, fx=convert.used())
