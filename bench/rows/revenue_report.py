"""Revenue report over 1,000,000 orders (issue 15, SPEC §5): p50 of ``GET
/v1/reports/revenue`` against the per-order normalizing loop of the original design (load
the paid orders with their payment, convert each, sum in the application), both on the
same data in the same run; the row checks that both give the same totals to the cent.

The orders are written straight into one tenant database with set-based SQL
(``generate_series``): 5 currencies, 4 providers, a discount on every 7th order, half of
every 10th refunded, every 20th unpaid; each paid order with its succeeded payment, and
with the paying provider and fee on the order as settlement keeps them (migration 0014).
Then the scheduler's report roll-up runs once (its first run rolls up every closed day,
``tenant/reports/rollup.py``) before the report is measured; the same report with the
roll-up's state reset (every order read live) is measured too, for comparison.

The FX rates (manual overrides) are chosen so that converting one order is exact (one
minor unit of each currency is a whole number of US cents): only then can a loop that
converts order by order agree with a report that converts each currency group once to
the cent. With real rates the loop drifts by up to half a cent per order — the other
reason the report converts per group.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from decimal import Decimal

from bench import pg
from bench.context import Context
from bench.registry import Line, Target, row
from bench.shop import tenant_db_name

#: Units of each currency per 1 USD: 1 EUR cent = 2 US cents, 1 penny = 4, 1 yen = 1,
#: 1 kobo = 2 (exact per order; see the module docstring).
RATES = {"EUR": "0.5", "GBP": "0.25", "JPY": "100", "NGN": "0.5"}
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "NGN")
PROVIDERS = ("sandbox", "stripe", "paystack", "flutterwave")
FROM, TO = "2026-01-01", "2026-03-01"

_ID = "('00000000-0000-4000-{part}-' || lpad(to_hex(i), 12, '0'))::uuid"
_AMOUNTS = """
    LATERAL (SELECT 1000 + (i::bigint * 7919) % 90000 AS sub) a,
    LATERAL (SELECT CASE WHEN i % 7 = 0 THEN a.sub / 10 ELSE 0 END AS disc) d,
    LATERAL (SELECT ((a.sub - d.disc) * 8) / 100 AS tax) x,
    LATERAL (SELECT a.sub - d.disc + x.tax AS total,
                    timestamptz '2026-01-01' + i * ($2::float8 * interval '1 second') AS t) y
"""
_ORDERS = f"""
    INSERT INTO orders (id, number, pay_token, status, payment_status, fulfillment, currency,
        customer_email, subtotal, discount, tax, total, original_amount, tax_rate, metadata,
        flags, paid_at, amount_refunded, paid_provider, provider_fee, created_at, updated_at)
    SELECT {_ID.format(part='8000')}, 'B-' || i, md5(i::text),
        CASE WHEN i % 20 = 0 THEN 'cancelled' WHEN i % 10 = 3 THEN 'partially_refunded'
             ELSE 'paid' END,
        CASE WHEN i % 20 = 0 THEN 'not_paid' WHEN i % 10 = 3 THEN 'partially_refunded'
             ELSE 'paid' END,
        'direct', (ARRAY{list(CURRENCIES)})[1 + i % 5], 'c' || (i % 1000) || '@example.com',
        a.sub, d.disc, x.tax, y.total, a.sub + x.tax, 8, '{{}}', '{{}}',
        CASE WHEN i % 20 = 0 THEN NULL ELSE y.t END,
        CASE WHEN i % 10 = 3 THEN y.total / 2 ELSE 0 END,
        CASE WHEN i % 20 = 0 THEN NULL ELSE (ARRAY{list(PROVIDERS)})[1 + i % 4] END,
        CASE WHEN i % 20 = 0 THEN NULL ELSE (y.total * 29) / 1000 + 30 END, y.t, y.t
    FROM generate_series(1, $1::int) AS i, {_AMOUNTS}
"""
_PAYMENTS = f"""
    INSERT INTO payments (id, order_id, attempt_number, provider, provider_payment_id,
        idempotency_key, status, amount, currency, fee_amount, instructions, flags,
        succeeded_at, created_at, updated_at)
    SELECT {_ID.format(part='9000')}, {_ID.format(part='8000')}, 1,
        (ARRAY{list(PROVIDERS)})[1 + i % 4], 'pp_' || i, 'bench:' || i, 'succeeded',
        y.total, (ARRAY{list(CURRENCIES)})[1 + i % 5], (y.total * 29) / 1000 + 30,
        '{{}}', '{{}}', y.t, y.t, y.t
    FROM generate_series(1, $1::int) AS i, {_AMOUNTS}
    WHERE i % 20 <> 0
"""
#: What the original design loaded: every paid order of the period with its payment.
_LOOP = """
    SELECT o.currency, o.total, o.discount, o.tax, o.amount_refunded, p.provider,
           p.fee_amount
    FROM orders o JOIN payments p ON p.order_id = o.id AND p.status = 'succeeded'
    WHERE o.paid_at >= $1 AND o.paid_at < $2
"""


def _orders_count() -> int:
    return int(os.environ.get("PAYMESH_BENCH_REPORT_ORDERS", "1000000"))


async def _generate(db_url: str, n: int, span_seconds: float) -> float:
    t0 = time.perf_counter()
    async with pg.connect(db_url) as conn:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(_ORDERS, n, span_seconds)
        await conn.execute(_PAYMENTS, n, span_seconds)
        await conn.execute("VACUUM (ANALYZE) orders")
        await conn.execute("VACUUM (ANALYZE) payments")
    return time.perf_counter() - t0


async def _roll_up(db_url: str) -> tuple[int, float]:
    """The scheduler's hourly roll-up (``tenant/reports/rollup.py``), as its job runs it:
    one READ COMMITTED transaction. The first run rolls up every closed day."""
    from core.sql import Sql
    from tenant.reports.rollup import roll_up

    t0 = time.perf_counter()
    async with pg.connect(db_url) as conn, conn.transaction():
        rolled = await roll_up(Sql(conn))
    return rolled.days, time.perf_counter() - t0


async def _forget_roll_up(db_url: str) -> None:
    """The roll-up's state back to "nothing rolled up": every day read live."""
    async with pg.connect(db_url) as conn:
        await conn.execute("UPDATE report_rollup_state SET rolled_until = NULL")


async def _p50(ctx: Context, auth: dict[str, str], params: dict[str, str], warm: int,
               runs: int) -> tuple[float, list[float], dict]:
    samples: list[float] = []
    report = None
    for i in range(warm + runs):
        t0 = time.perf_counter()
        resp = await ctx.api.get("/v1/reports/revenue", headers=auth, params=params)
        seconds = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"GET /v1/reports/revenue answered {resp.status_code}: "
                               f"{resp.text[:300]}")
        report = resp.json()
        if i >= warm:  # the first ones warm the caches
            samples.append(seconds)
    assert report is not None
    return statistics.median(samples), samples, report


async def _loop(db_url: str) -> tuple[dict[str, int], float]:
    """The per-order normalizing loop: load, convert each order's figures, sum."""
    from core.fx import NATIVE_USD, Quote, Source, apply

    quotes = {c: Quote(c, Decimal(r), Source.MANUAL) for c, r in RATES.items()}
    quotes["USD"] = NATIVE_USD
    t0 = time.perf_counter()
    async with pg.connect(db_url) as conn:
        rows = await conn.fetch(_LOOP, *_bounds())
    sums: Counter[str] = Counter()
    for r in rows:
        q = quotes[r["currency"]]
        sums["gross"] += apply(r["total"], q, NATIVE_USD).amount
        sums["discounts"] += apply(r["discount"], q, NATIVE_USD).amount
        sums["tax"] += apply(r["tax"], q, NATIVE_USD).amount
        sums["refunds"] += apply(r["amount_refunded"], q, NATIVE_USD).amount
        sums["provider_fees"] += apply(r["fee_amount"] or 0, q, NATIVE_USD).amount
        sums["orders"] += 1
    return dict(sums), time.perf_counter() - t0


def _bounds() -> tuple[object, object]:
    from core.period import Period

    period = Period.parse(FROM, TO)
    return period.start, period.end


@row("revenue_report", title="Revenue report over 1,000,000 orders", needs=(), issue=15)
async def revenue_report(ctx: Context) -> list[Line]:
    """p50 of GET /v1/reports/revenue over one tenant's orders vs the per-order loop."""
    n = 100_000 if ctx.profile.quick else _orders_count()
    tenant, _ = await ctx.create_tenant()
    db_url = pg.with_database(ctx.stack.server_url, await tenant_db_name(ctx, tenant.slug))
    rates = await ctx.api.put("/v1/owner/fx-rates", headers=ctx.owner_headers,
                              json={"rates": RATES})
    if rates.status_code != 200:
        raise RuntimeError(f"PUT /v1/owner/fx-rates answered {rates.status_code}: "
                           f"{rates.text[:300]}")
    span = 58 * 86400 / n  # the orders spread over January and February
    ctx.log(f"revenue_report: generating {n:,} orders with their payments (set-based SQL)")
    generated = await _generate(db_url, n, span)
    ctx.log(f"revenue_report: generated in {generated:.1f} s")

    days, rollup_seconds = await _roll_up(db_url)
    ctx.log(f"revenue_report: rolled up {days} closed days in {rollup_seconds:.1f} s")

    auth = {"Authorization": f"Bearer {tenant.key}"}
    params = {"from": FROM, "to": TO, "currency": "USD", "group_by": "provider"}
    p50, samples, report = await _p50(ctx, auth, params, 3, 5 if ctx.profile.quick else 20)
    # the same report with nothing rolled up (every order read live), then rolled up again
    await _forget_roll_up(db_url)
    live_p50, live_samples, live_report = await _p50(ctx, auth, params, 1, 5)
    await _roll_up(db_url)
    ctx.log(f"revenue_report: report p50 {p50 * 1000:.1f} ms; running the per-order loop")
    loop_totals, loop_seconds = await _loop(db_url)
    ctx.log(f"revenue_report: loop {loop_seconds:.1f} s")

    totals = report["totals"]
    mismatched = {k: (totals[k], v) for k, v in loop_totals.items() if totals[k] != v}
    if live_report["totals"] != totals:
        mismatched["live_report"] = (live_report["totals"], totals)
    ctx.details["revenue_report"] = {
        "orders_generated": n, "generate_seconds": generated, "rollup_days": days,
        "rollup_seconds": rollup_seconds, "report_seconds": samples, "report_p50": p50,
        "live_report_seconds": live_samples, "live_report_p50": live_p50,
        "loop_seconds": loop_seconds, "totals": totals, "loop_totals": loop_totals,
        "mismatched": mismatched}
    agree = ("totals agree with the loop to the cent" if not mismatched
             else f"TOTALS DIFFER from the loop: {mismatched}")
    note = (f"{n:,} orders ({totals['orders']:,} paid, 5 currencies, 4 providers) "
            f"generated in {generated:.0f} s; {days} closed days rolled up in "
            f"{rollup_seconds:.1f} s (the hourly job's first run); {agree}")
    return [
        Line(f"revenue report p50, GET /v1/reports/revenue ({n:,} orders)", p50 * 1000, "ms",
             target=Target("<=", 300, on="figure", label="≤ 300 ms"), valid=not mismatched,
             note=note),
        Line("revenue report p50, nothing rolled up (every order read live)",
             live_p50 * 1000, "ms", valid=not mismatched,
             note="the same report with the roll-up's state reset; for comparison only"),
        Line("revenue report speed-up vs per-order normalizing loop", loop_seconds / p50,
             "×", reference=None, reference_label=f"loop {loop_seconds:.2f} s",
             target=Target(">=", 100, on="figure", label="≥ 100×"), valid=not mismatched),
    ]
