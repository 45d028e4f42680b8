"""The platform report across tenants (O7), read live from each tenant database.

Tenants are visited a few at a time (:data:`CONCURRENCY`), each with one short read-only
transaction running one aggregate over the covering index ``ix_orders_paid_report``
(tenant migration 0014): per original currency, the count and sum of the orders paid in
the period. The visits go through the tenant engine registry, so the process never holds
more tenant connections than its cap (``PAYMESH_MAX_TENANT_CONNECTIONS``) — and this
report holds at most ``CONCURRENCY`` of them at once, leaving the rest to requests. Each
``(tenant, currency)`` group is converted once with the report's quotes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from core.money import normalize_currency
from core.period import Period
from core.runtime import Runtime
from owner.fx.batch import Converter
from owner.reports.schemas import PlatformReport, PlatformTotals, TenantVolume
from owner.tenants.service import all_tenants, tenant_db_url

log = logging.getLogger(__name__)

#: Tenant databases read at the same time by one platform report.
CONCURRENCY = 4

#: A tenant's paid orders of the period, per original currency. Application fees are
#: zero until the marketplace (T16) records them on orders: wire them here.
_VOLUME = """
    SELECT currency, count(*) AS orders, COALESCE(sum(total), 0) AS gross,
           0::bigint AS application_fees
    FROM orders WHERE paid_at IS NOT NULL AND paid_at >= $1 AND paid_at < $2
    GROUP BY currency
"""

Volume = dict[str, tuple[int, int, int]]  # currency -> (orders, gross, application_fees)


async def _volume(runtime: Runtime, slug: str, url: str, period: Period,
                  gate: asyncio.Semaphore) -> Volume | None:
    """The tenant's volume, or None when its database cannot be read (its server down, the
    database gone): one tenant's outage never takes the whole report down."""
    try:
        async with gate, runtime.tenants.transaction(url) as tx:
            rows = await (await tx.sql()).fetch(_VOLUME, period.start, period.end)
    except Exception as exc:  # noqa: BLE001 - reported as unavailable, and logged
        log.warning("platform report: tenant %s unavailable (%s)", slug, type(exc).__name__)
        return None
    return {r["currency"]: (int(r["orders"]), int(r["gross"]), int(r["application_fees"]))
            for r in rows}


async def build(owner_db: AsyncSession, runtime: Runtime, period: Period,
                currency: str) -> PlatformReport:
    currency = normalize_currency(currency)
    tenants = await all_tenants(owner_db)
    gate = asyncio.Semaphore(CONCURRENCY)
    volumes = await asyncio.gather(*(
        _volume(runtime, t.slug, tenant_db_url(t), period, gate) for t in tenants))
    convert = Converter(currency)
    await convert.load({c for v in volumes if v for c in v})
    rows, totals = [], defaultdict(int)
    for tenant, volume in zip(tenants, volumes, strict=True):
        if volume is None:
            rows.append(TenantVolume(slug=tenant.slug, orders=0, gross=0, application_fees=0,
                                     available=False))
            totals["unavailable"] += 1
            continue
        orders = sum(n for n, _, _ in volume.values())
        gross = sum(convert(g, c) for c, (_, g, _) in sorted(volume.items()))
        fees = sum(convert(f, c) for c, (_, _, f) in sorted(volume.items()))
        rows.append(TenantVolume(slug=tenant.slug, orders=orders, gross=gross,
                                 application_fees=fees))
        totals["orders"] += orders
        totals["gross"] += gross
        totals["application_fees"] += fees
    return PlatformReport(currency=currency, from_=period.start, to=period.end,
                          tenants=sorted(rows, key=lambda r: r.slug),
                          totals=PlatformTotals(**totals), fx=convert.used())
