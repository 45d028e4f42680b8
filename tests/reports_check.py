"""The revenue report's agreement check, called at the end of the suite's end-to-end money
scenarios (refunds, disputes, coupons, the money simulation): ``source=orders`` and
``source=ledger`` must give the same report, to the cent, for every grouping, and each
report must add up (``net`` and the groups against the totals)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

#: Wide enough for any test's orders (``from`` inclusive, ``to`` exclusive).
FROM, TO = "2000-01-01", "2100-01-01"
GROUPINGS = ("currency", "provider", "day")
TEST_RATE = "0.75"


async def paid_currencies(slug: str) -> list[str]:
    from tests.integration.test_orders_support import tenant_db

    async with tenant_db(slug) as session:
        return list((await session.execute(text(
            "SELECT DISTINCT currency FROM orders WHERE paid_at IS NOT NULL "
            "ORDER BY currency"))).scalars())


def assert_adds_up(report: dict[str, Any]) -> None:
    t = report["totals"]
    assert t["net"] == (t["gross"] - t["refunds"] - t["disputes_lost"] - t["provider_fees"]
                        - t["platform_fees"] - t["commissions"] - t["tax"]
                        - t["operating_costs"]), report
    assert sum(g["gross"] for g in report["groups"]) == t["gross"], report
    assert sum(g["refunds"] for g in report["groups"]) == t["refunds"], report
    assert sum(g["orders"] for g in report["groups"]) == t["orders"], report
    assert sum(g["net"] for g in report["groups"]) == t["net"] + t["operating_costs"], report


@asynccontextmanager
async def rates_for(currencies: list[str]) -> AsyncIterator[None]:
    """Manual FX overrides (a test rate) for the currencies that have no rate in any layer,
    removed afterwards: the agreement is about the sums, not about the rates."""
    from core.audit import Actor
    from core.errors import PaymeshError
    from core.runtime import get_runtime
    from owner import fx
    from owner.fx.service import set_overrides

    missing = []
    for currency in currencies:
        try:
            await fx.quote(currency)
        except PaymeshError:
            missing.append(currency)
    runtime, actor = get_runtime(), Actor(kind="system")
    if missing:
        async with runtime.owner_session() as session:
            await set_overrides(session, {c: TEST_RATE for c in missing}, actor)
    try:
        yield
    finally:
        if missing:
            async with runtime.owner_session() as session:
                await set_overrides(session, dict.fromkeys(missing), actor)


async def assert_reports_agree(client: Any, tenant: Any, currency: str | None = None,
                               ) -> dict[str, Any]:
    """Both sources agree for every ``group_by``; returns the orders report by currency.
    ``currency`` defaults to the one currency of the tenant's paid orders (no FX rate
    needed), else USD (currencies without any rate get a test rate meanwhile)."""
    found = await paid_currencies(tenant.slug)
    if currency is None:
        currency = found[0] if len(found) == 1 else "USD"
    async with rates_for([c for c in found if c != currency]):
        return await _agree(client, tenant, currency)


async def _agree(client: Any, tenant: Any, currency: str) -> dict[str, Any]:
    first: dict[str, Any] | None = None
    for group_by in GROUPINGS:
        reports = {}
        for source in ("orders", "ledger"):
            answer = await client.get("/v1/reports/revenue", headers=tenant.headers, params={
                "from": FROM, "to": TO, "group_by": group_by, "currency": currency,
                "source": source})
            assert answer.status_code == 200, answer.text
            reports[source] = answer.json()
            assert_adds_up(reports[source])
        assert reports["orders"] == reports["ledger"], (group_by, reports)
        first = first or reports["orders"]
    assert first is not None
    return first
