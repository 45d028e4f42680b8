"""Revenue reports and metrics (T17, SPEC 3a) through HTTP: figures in SQL per original
currency, converted once per group with the FX service's rates, the ledger agreeing to the
cent; bad input is a 400 with the error object."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from core.money import CURRENCIES
from core.period import Period, prorate_monthly
from tests.integration.test_orders_support import (
    assert_error,
    configure,
    gateway,  # noqa: F401 - fixture
    order,
)
from tests.integration.test_refunds_api import confirm, paid_order, refund
from tests.reports_check import assert_reports_agree, rates_for
from tests.workers.helpers import sandbox_shop

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]


def _month_bounds() -> tuple[str, str]:
    now = datetime.now(UTC)
    start = now.replace(day=1)
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.date().isoformat(), following.date().isoformat()


async def _fee(client, tenant, order_id: str) -> int:
    payments = await client.get("/v1/payments", params={"order_id": order_id},
                                headers=tenant.headers)
    return sum(p["fee_amount"] or 0 for p in payments.json()["data"]
               if p["status"] == "succeeded")


async def test_revenue_in_one_currency_adds_up_and_agrees_with_the_ledger(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "report")
    await configure(client, tenant, "cash")
    first, _ = await paid_order(client, tenant)
    second, _ = await paid_order(client, tenant, [{"description": "Visit", "quantity": 2,
                                                   "unit_amount": 3_333}])
    cash = await order(client, tenant)
    marked = await client.post(f"/v1/orders/{cash['id']}/mark-paid", headers=tenant.headers)
    assert marked.status_code == 200, marked.text
    await order(client, tenant)  # unpaid: not in the report
    await confirm(client, tenant, await refund(client, tenant, first["id"], amount=1_000))
    fees = sum([await _fee(client, tenant, o["id"]) for o in (first, second, cash)])
    monthly = 3_100
    patched = await client.patch("/v1/settings", headers=tenant.headers, json={
        "operating_costs_monthly": monthly, "operating_costs_currency": "usd"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["operating_costs_currency"] == "USD"

    start, end = _month_bounds()
    answer = await client.get("/v1/reports/revenue", headers=tenant.headers, params={
        "from": start, "to": end, "group_by": "provider", "currency": "USD"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    gross = first["total"] + second["total"] + cash["total"]
    assert (report["currency"], report["from"][:10], report["to"][:10]) == ("USD", start, end)
    assert report["totals"] == {
        "gross": gross, "discounts": 0, "refunds": 1_000, "disputes_lost": 0,
        "provider_fees": fees, "platform_fees": 0, "commissions": 0, "tax": 0,
        "operating_costs": monthly, "net": gross - 1_000 - fees - monthly, "orders": 3,
        "average_order_value": round(gross / 3)}
    assert [(g["key"], g["orders"], g["gross"], g["refunds"]) for g in report["groups"]] == [
        ("cash", 1, cash["total"], 0),
        ("sandbox", 2, first["total"] + second["total"], 1_000)]
    assert report["fx"] == [{"currency": "USD", "rate": "1", "source": "native"}]
    agreed = await assert_reports_agree(client, tenant)
    assert agreed["totals"]["gross"] == gross

    # a period without the orders: zero, no division by zero
    empty = await client.get("/v1/reports/revenue", headers=tenant.headers, params={
        "from": "2001-01-01", "to": "2001-01-02"})
    assert empty.status_code == 200, empty.text
    assert (empty.json()["totals"]["orders"], empty.json()["totals"]["average_order_value"],
            empty.json()["groups"]) == (0, 0, [])


async def test_currencies_are_converted_once_per_group_with_the_rates_shown(
        client, make_tenant, owner_headers):
    tenant = await sandbox_shop(client, make_tenant, "reportfx")
    usd, _ = await paid_order(client, tenant)
    rates = await client.put("/v1/owner/fx-rates", headers=owner_headers,
                             json={"rates": {"KES": "0.8"}})
    assert rates.status_code == 200, rates.text
    try:
        kes = await order(client, tenant, currency="KES")
        started = await client.post(f"/v1/orders/{kes['id']}/checkout", json={},
                                    headers=tenant.headers)
        if started.status_code != 201:
            pytest.fail(f"the sandbox must take KES: {started.text}")
        from tests.integration.test_orders_support import succeed
        payment = started.json()["payment"]
        import httpx
        page = httpx.URL(started.json()["redirect_url"]).path
        assert (await client.post(page, data={"card_number": "4242424242424242"})
                ).status_code == 303
        assert await succeed(tenant.slug, payment) is True
        answer = await client.get("/v1/reports/revenue", headers=tenant.headers, params={
            "from": "2000-01-01", "to": "2100-01-01", "currency": "usd"})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        # KES 50.00 at 0.8 KES per USD is USD 62.50, converted once for the group
        assert [(g["key"], g["gross"], g["orders"]) for g in report["groups"]] == [
            ("KES", 6_250, 1), ("USD", usd["total"], 1)]
        assert report["totals"]["gross"] == usd["total"] + 6_250
        assert {"currency": "KES", "rate": "0.8", "source": "manual"} in report["fx"]
        in_kes = (await client.get("/v1/reports/revenue", headers=tenant.headers, params={
            "from": "2000-01-01", "to": "2100-01-01", "currency": "KES"})).json()
        assert in_kes["totals"]["gross"] == kes["total"] + usd["total"] * 8 // 10
        await assert_reports_agree(client, tenant, currency="USD")
    finally:
        await client.put("/v1/owner/fx-rates", headers=owner_headers,
                         json={"rates": {"KES": None}})


@pytest.mark.parametrize(("params", "param"), [
    ({"group_by": "week"}, "group_by"),
    ({"source": "invoices"}, "source"),
    ({"currency": "XXY"}, "currency"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-01-01T25:00:00"}, "from"),
])
async def test_bad_report_input_is_a_400_naming_the_parameter(client, make_tenant, params,
                                                              param):
    tenant = await make_tenant("reportbad")
    for path in ("/v1/reports/revenue", "/v1/reports/metrics"):
        if path.endswith("metrics") and param not in ("from", "to"):
            continue
        error = assert_error(await client.get(path, headers=tenant.headers, params=params),
                             400, "validation_error")
        assert error["param"] == param, error


async def test_a_currency_without_any_rate_is_a_422(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "reportnorate")
    await paid_order(client, tenant)
    error = assert_error(await client.get("/v1/reports/revenue", headers=tenant.headers,
                                          params={"currency": "BTN"}), 422,
                         "fx_rate_unavailable")
    assert error["param"] == "currency"


async def test_operating_costs_settings_are_checked(client, make_tenant):
    tenant = await make_tenant("reportcosts")
    for body, param in (({"operating_costs_monthly": -1}, "operating_costs_monthly"),
                        ({"operating_costs_monthly": 10}, "operating_costs_currency"),
                        ({"operating_costs_currency": "NOPE"}, "operating_costs_currency")):
        error = assert_error(await client.patch("/v1/settings", headers=tenant.headers,
                                                json=body), 400, "validation_error")
        assert error["param"] == param
    settings = (await client.get("/v1/settings", headers=tenant.headers)).json()
    assert (settings["operating_costs_monthly"], settings["operating_costs_currency"]) == (0, None)


async def test_metrics_count_the_period(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "metrics")
    made, _ = await paid_order(client, tenant)
    abandoned = await order(client, tenant)
    opened = await client.post(f"/v1/orders/{abandoned['id']}/checkout", json={},
                               headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert opened.status_code == 201, opened.text
    await order(client, tenant)  # never checked out: not a checkout
    await confirm(client, tenant, await refund(client, tenant, made["id"], amount=100))
    answer = await client.get("/v1/reports/metrics", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    m = answer.json()
    assert (m["payment_success_rate"], m["checkout_abandonment_rate"], m["refund_rate"],
            m["dispute_rate"]) == ("1.0000", "0.5000", "1.0000", "0.0000")
    assert m["reservations"] == {"active": 0, "expired": 0, "converted": 0}
    hooks = m["webhooks"]
    assert hooks["received"] == hooks["processed"] >= 1
    assert (hooks["failed"], hooks["dead"]) == (0, 0)
    assert 0 <= hooks["lag_p50_seconds"] <= hooks["lag_p99_seconds"]
    old = (await client.get("/v1/reports/metrics", headers=tenant.headers, params={
        "from": "2001-01-01", "to": "2001-02-01"})).json()
    assert old["payment_success_rate"] is None and old["webhooks"]["received"] == 0


def test_operating_costs_are_prorated_by_calendar_month():
    def period(a: str, b: str) -> Period:
        return Period.parse(a, b)

    assert prorate_monthly(3_100, period("2026-01-01", "2026-02-01")) == 3_100
    assert prorate_monthly(3_100, period("2026-01-01", "2026-01-02")) == 100
    # half of January (31 days) and all of February (28 days)
    assert prorate_monthly(6_200, period("2026-01-16T12:00:00Z", "2026-03-01")) == 9_300
    assert prorate_monthly(1, period("2026-01-01", "2026-01-01T00:00:01Z")) == 0
    assert prorate_monthly(0, period("2026-01-01", "2027-01-01")) == 0
    assert prorate_monthly(1_000, period("2026-01-01", "2027-01-01")) == 12_000
    assert Period.parse(None, "2026-03-01").start == datetime(2026, 1, 30, tzinfo=UTC)
    assert Period.parse("2026-01-01T10:00:00+02:00", None).start == datetime(
        2026, 1, 1, 8, tzinfo=UTC)
    assert timedelta(days=30) == Period.parse(None, "2026-03-01").end - Period.parse(
        None, "2026-03-01").start


async def test_the_platform_report_spans_tenants_normalized(client, make_tenant, owner_headers):
    one = await sandbox_shop(client, make_tenant, "platone")
    two = await sandbox_shop(client, make_tenant, "plattwo")
    paid_one, _ = await paid_order(client, one)
    paid_two, _ = await paid_order(client, two)
    paid_three, _ = await paid_order(client, two)
    await order(client, two)  # unpaid
    # the session's other tenants may sell in any currency: each needs a rate
    async with rates_for(sorted(CURRENCIES - {"USD"})):
        answer = await client.get("/v1/owner/reports/platform", headers=owner_headers,
                                  params={"currency": "USD"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    mine = {t["slug"]: t for t in report["tenants"] if t["slug"] in (one.slug, two.slug)}
    assert mine == {
        one.slug: {"slug": one.slug, "orders": 1, "gross": paid_one["total"],
                   "application_fees": 0, "available": True},
        two.slug: {"slug": two.slug, "orders": 2,
                   "gross": paid_two["total"] + paid_three["total"], "application_fees": 0,
                   "available": True}}
    assert report["totals"]["orders"] == sum(t["orders"] for t in report["tenants"])
    assert report["totals"]["gross"] == sum(t["gross"] for t in report["tenants"])

    # a tenant whose database cannot be read is named, not a 503 for the whole platform
    gone = await make_tenant("platgone")
    async with _unreachable(gone.slug), rates_for(sorted(CURRENCIES - {"USD"})):
        answer = await client.get("/v1/owner/reports/platform", headers=owner_headers,
                                  params={"currency": "USD"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    lost = [t for t in report["tenants"] if t["slug"] == gone.slug]
    assert lost == [{"slug": gone.slug, "orders": 0, "gross": 0, "application_fees": 0,
                     "available": False}]
    assert report["totals"]["unavailable"] == sum(
        1 for t in report["tenants"] if not t["available"])
    assert report["totals"]["gross"] == sum(t["gross"] for t in report["tenants"])
    # a tenant key cannot read it; bad input is a 400
    assert (await client.get("/v1/owner/reports/platform", headers=one.headers)
            ).status_code in (401, 403)
    for params, param in (({"currency": "ZZZ"}, "currency"),
                          ({"from": "2026-02-01", "to": "2026-01-01"}, "from")):
        error = assert_error(await client.get("/v1/owner/reports/platform",
                                              headers=owner_headers, params=params),
                             400, "validation_error")
        assert error["param"] == param


@asynccontextmanager
async def _unreachable(slug: str) -> AsyncIterator[None]:
    """The tenant's database out of reach (the registry names a database its server does
    not have, as when the server lost it), put back afterwards."""
    from sqlalchemy import update

    from core.runtime import get_runtime
    from owner.tenants.models import Tenant

    async def rename(name: str | None) -> str:
        async with get_runtime().owner_session() as session:
            row = (await session.execute(update(Tenant).where(Tenant.slug == slug).values(
                db_name=name if name else Tenant.db_name + "_gone").returning(
                Tenant.db_name))).scalar_one()
        return str(row)

    missing = await rename(None)
    try:
        yield
    finally:
        await rename(missing.removesuffix("_gone"))
