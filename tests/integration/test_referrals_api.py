"""Referral codes, commissions and tiers (SPEC 3a, T14/T20) through HTTP: orders paid at
the sandbox gateway (its hosted page, then the capture as the webhook worker records it),
refunds confirmed by the gateway's signed webhook, the scheduler's approval job."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fx_api import fx_runtime, rate_api  # noqa: F401 - fixtures
from tests.integration.test_orders_support import (
    assert_error,
    balances,
    checkout,
    gateway,  # noqa: F401 - fixture
    get_order,
    succeed,
    tenant_db,
)
from tests.integration.test_refunds_api import confirm, refund
from tests.reports_check import assert_reports_agree
from tests.workers.helpers import sandbox_shop
from tests.workers.test_outgoing_webhooks import allow_private, register  # noqa: F401

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]

SUCCESS_CARD = "4242424242424242"
REFERRER = "Ref.Erer@Example.com"


def refused(response: httpx.Response) -> dict[str, Any]:
    """A 4xx with the error object (400 for a body the schema refuses, 422 for a value
    the contract refuses)."""
    assert 400 <= response.status_code < 500, response.text
    return assert_error(response, response.status_code)


async def make_code(client: Any, tenant: Any, code: str = "FRIEND", key: str | None = None,
                    **body: Any) -> httpx.Response:
    return await client.post("/v1/referral-codes",
                             json={"code": code, "referrer_email": REFERRER, **body},
                             headers={**tenant.headers,
                                      "Idempotency-Key": key or uuid.uuid4().hex})


async def new_order(client: Any, tenant: Any, amount: int, currency: str = "USD",
                    email: str = "buyer@example.com", **body: Any) -> httpx.Response:
    return await client.post("/v1/orders", headers=tenant.headers, json={
        "customer_email": email, "currency": currency,
        "items": [{"description": "Course", "quantity": 1, "unit_amount": amount}], **body})


async def start_paying(client: Any, tenant: Any, amount: int, currency: str = "USD",
                       **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order paid at the sandbox's hosted page, its capture not recorded yet."""
    made = await new_order(client, tenant, amount, currency, **body)
    assert made.status_code == 201, made.text
    started = await checkout(client, tenant, made.json()["id"])
    assert started.status_code == 201, started.text
    page = httpx.URL(started.json()["redirect_url"]).path
    paid = await client.post(page, data={"card_number": SUCCESS_CARD})
    assert paid.status_code == 303, paid.text
    return made.json(), started.json()["payment"]


async def pay(client: Any, tenant: Any, amount: int, currency: str = "USD",
              **body: Any) -> dict[str, Any]:
    made, payment = await start_paying(client, tenant, amount, currency, **body)
    assert await succeed(tenant.slug, payment) is True
    return made


async def commissions(client: Any, tenant: Any, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/commissions", headers=tenant.headers,
                                params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def commission_of(client: Any, tenant: Any, order_id: str) -> dict[str, Any]:
    found = [c for c in await commissions(client, tenant) if c["order_id"] == order_id]
    assert len(found) == 1, found
    response = await client.get(f"/v1/commissions/{found[0]['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == found[0]
    return found[0]


async def code_state(client: Any, tenant: Any, code_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/referral-codes/{code_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def tier_notices(slug: str) -> list[tuple[str, str]]:
    async with tenant_db(slug) as session:
        rows = (await session.execute(text(
            "SELECT recipient, data->>'tier' FROM notifications "
            "WHERE template = 'referral_tier_changed' ORDER BY created_at"))).all()
    return [(r, t) for r, t in rows]


async def approve(slug: str) -> int:
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from workers.scheduler import approve_commissions

    runtime = get_runtime()
    return await approve_commissions(runtime, await lookup(runtime, slug=slug))


async def test_codes_are_created_listed_changed_and_refused_when_malformed(client,
                                                                           make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refcodes")
    key = uuid.uuid4().hex
    created = await make_code(client, tenant, "Friend-1", key)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("code", "referrer_email", "discount_percent", "tier",
                                 "referred_revenue_usd", "active")} == {
        "code": "Friend-1", "referrer_email": "ref.erer@example.com", "discount_percent": 10,
        "tier": "bronze", "referred_revenue_usd": 0, "active": True}
    again = await make_code(client, tenant, "Friend-1", key)  # the same request: replayed
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == body["id"]
    assert_error(await make_code(client, tenant, "FRIEND-1"), 409, "referral_code_taken")
    for bad in (101, -1, 12.5, "10", True, None):
        error = refused(await make_code(client, tenant, f"X{uuid.uuid4().hex[:6]}",
                                        discount_percent=bad))
        assert error["param"] == "discount_percent" or bad in ("10", None), error
    for bad_body in ({"code": "", "referrer_email": REFERRER},
                     {"code": "ok", "referrer_email": "nope"},
                     {"code": "has space", "referrer_email": REFERRER},
                     {"code": "ok2", "referrer_email": REFERRER, "extra": 1}):
        response = await client.post("/v1/referral-codes", json=bad_body,
                                     headers={**tenant.headers,
                                              "Idempotency-Key": uuid.uuid4().hex})
        assert 400 <= response.status_code < 500, response.text
    zero = await make_code(client, tenant, "Zero", discount_percent=0)
    assert zero.status_code == 201 and zero.json()["discount_percent"] == 0

    listed = await client.get("/v1/referral-codes", headers=tenant.headers,
                              params={"code": "friend-1"})
    assert [c["id"] for c in listed.json()["data"]] == [body["id"]]
    changed = await client.patch(f"/v1/referral-codes/{body['id']}", headers=tenant.headers,
                                 json={"discount_percent": 15, "active": False})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["discount_percent"], changed.json()["active"]) == (15, False)
    for bad in (101, 2.5):
        error = refused(await client.patch(
            f"/v1/referral-codes/{body['id']}", headers=tenant.headers,
            json={"discount_percent": bad}))
        assert error["param"] == "discount_percent"
    assert (await code_state(client, tenant, body["id"]))["discount_percent"] == 15
    assert_error(await client.get(f"/v1/referral-codes/{uuid.uuid4()}",
                                  headers=tenant.headers), 404)

    # on an order: unknown and inactive codes, and a referrer buying with its own code
    for code, email, want in (("nobody", "buyer@example.com", "referral_code_invalid"),
                              ("friend-1", "buyer@example.com", "referral_code_invalid"),
                              ("ZERO", "REF.ERER@example.com", "self_referral")):
        error = assert_error(await new_order(client, tenant, 1_000, email=email,
                                             referral_code=code), 422, want)
        assert error["param"] == "referral_code"
    async with tenant_db(tenant.slug) as session:
        assert (await session.execute(text("SELECT count(*) FROM orders"))).scalar() == 0


async def test_discount_after_the_coupon_and_tiers_across_500_dollars(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "reftiers")
    code = (await make_code(client, tenant, "Pal")).json()
    coupon = await client.post("/v1/coupons", json={"code": "TENOFF", "percent_off": 10},
                               headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert coupon.status_code == 201, coupon.text

    # $400 less the coupon's 10 % ($40) less the code's 10 % of the rest ($36)
    first = await pay(client, tenant, 40_000, coupon_code="TENOFF", referral_code="pal")
    assert (first["subtotal"], first["discount"], first["referral_discount"], first["total"],
            first["coupon_code"], first["referral_code"]) == (
        40_000, 7_600, 3_600, 32_400, "TENOFF", "Pal")
    shown = await get_order(client, tenant, first["id"])
    assert (shown["discount"], shown["referral_discount"], shown["referral_code"]) == (
        7_600, 3_600, "Pal")
    one = await commission_of(client, tenant, first["id"])
    assert {k: one[k] for k in ("referral_code", "referrer_email", "base_amount", "amount",
                                "currency", "rate_percent", "tier", "amount_usd", "fx_rate",
                                "fx_source", "status")} == {
        "referral_code": "Pal", "referrer_email": "ref.erer@example.com",
        "base_amount": 32_400, "amount": 6_480, "currency": "USD", "rate_percent": "20",
        "tier": "bronze", "amount_usd": 6_480, "fx_rate": "1", "fx_source": "native",
        "status": "pending"}
    assert (await code_state(client, tenant, code["id"]))["referred_revenue_usd"] == 32_400

    # $200 - 10 % = $180: found bronze ($324 < $500), leaves $504: silver from now on
    second = await pay(client, tenant, 20_000, referral_code="PAL")
    two = await commission_of(client, tenant, second["id"])
    assert (two["base_amount"], two["tier"], two["rate_percent"], two["amount"]) == (
        18_000, "bronze", "20", 3_600)
    state = await code_state(client, tenant, code["id"])
    assert (state["tier"], state["referred_revenue_usd"]) == ("silver", 50_400)
    assert await tier_notices(tenant.slug) == [("ref.erer@example.com", "silver")]

    # the next order sees silver; a second code of the same referrer adds to the same sum
    other = (await make_code(client, tenant, "Pal2", discount_percent=0)).json()
    third = await pay(client, tenant, 10_000, referral_code="pal2")
    three = await commission_of(client, tenant, third["id"])
    assert (three["base_amount"], three["tier"], three["rate_percent"], three["amount"]) == (
        10_000, "silver", "25", 2_500)
    assert (await code_state(client, tenant, other["id"]))["referred_revenue_usd"] == 60_400
    assert [c["order_id"] for c in await commissions(client, tenant, referral_code="pal2")] \
        == [third["id"]]
    assert [c["id"] for c in await commissions(client, tenant, status="pending")] \
        == [three["id"], two["id"], one["id"]]
    assert_error(await client.get("/v1/commissions", headers=tenant.headers,
                                  params={"status": "bogus"}), 400)

    ledger = await balances(client, tenant, "USD")
    assert ledger["commissions/USD"] == 6_480 + 3_600 + 2_500
    assert ledger["commissions_payable/USD"] == 6_480 + 3_600 + 2_500
    # revenue at list price, both discounts as contra-revenue (coupon, then referral)
    assert ledger["discounts/USD"] == 4_000 + 3_600 + 2_000
    assert ledger["revenue/USD"] == 40_000 + 20_000 + 10_000


async def test_refunds_reduce_then_cancel_and_the_revenue_follows(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refrefund")
    code = (await make_code(client, tenant, "Back", discount_percent=0)).json()
    made = await pay(client, tenant, 60_000, referral_code="back")
    assert (await code_state(client, tenant, code["id"]))["tier"] == "silver"
    assert await tier_notices(tenant.slug) == [("ref.erer@example.com", "silver")]

    partial = await confirm(client, tenant, await refund(client, tenant, made["id"],
                                                         amount=15_000))
    assert partial["status"] == "succeeded"
    reduced = await commission_of(client, tenant, made["id"])
    # 20 % of $600 = $120, reduced pro rata to the $450 left: $90
    assert (reduced["status"], reduced["amount"], reduced["amount_usd"], reduced["tier"],
            reduced["base_amount"]) == ("pending", 9_000, 9_000, "bronze", 60_000)
    state = await code_state(client, tenant, code["id"])
    assert (state["referred_revenue_usd"], state["tier"]) == (45_000, "bronze")
    assert await tier_notices(tenant.slug) == [("ref.erer@example.com", "silver"),
                                               ("ref.erer@example.com", "bronze")]
    assert (await balances(client, tenant, "USD"))["commissions_payable/USD"] == 9_000
    # the revenue report counts what is still owed, from the orders and from the ledger
    assert (await assert_reports_agree(client, tenant))["totals"]["commissions"] == 9_000

    await confirm(client, tenant, await refund(client, tenant, made["id"]))  # the rest
    cancelled = await commission_of(client, tenant, made["id"])
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert (await code_state(client, tenant, code["id"]))["referred_revenue_usd"] == 0
    ledger = await balances(client, tenant, "USD")
    assert (ledger.get("commissions/USD", 0), ledger.get("commissions_payable/USD", 0)) == (0, 0)
    assert_error(await client.post(f"/v1/commissions/{cancelled['id']}/mark-paid",
                                   headers=tenant.headers), 409, "commission_not_approved")
    assert await approve(tenant.slug) == 0  # a cancelled one is never approved
    assert (await assert_reports_agree(client, tenant))["totals"]["commissions"] == 0


async def test_the_scheduler_approves_after_the_hold_then_mark_paid(client, make_tenant,
                                                                   allow_private):
    tenant = await sandbox_shop(client, make_tenant, "refapprove")
    # the tenant's systems hear of approvals (an endpoint that takes nothing else)
    hook = await register(client, tenant, "http://127.0.0.1:9/commissions",
                          events=["commission.approved"])
    await make_code(client, tenant, "Held", discount_percent=0)
    made = await pay(client, tenant, 10_000, referral_code="held")
    held = await commission_of(client, tenant, made["id"])
    assert await approve(tenant.slug) == 0  # 14 days by default
    assert_error(await client.post(f"/v1/commissions/{held['id']}/mark-paid",
                                   headers=tenant.headers), 409, "commission_not_approved")

    response = await client.patch("/v1/settings", headers=tenant.headers,
                                  json={"commission_hold_days": 0})
    assert response.status_code == 200, response.text
    assert response.json()["commission_hold_days"] == 0
    assert await approve(tenant.slug) == 1
    approved = await commission_of(client, tenant, made["id"])
    assert approved["status"] == "approved" and approved["approved_at"]
    assert await approve(tenant.slug) == 0
    sent = await client.get(f"/v1/webhook-endpoints/{hook['id']}/deliveries",
                            headers=tenant.headers)
    assert [d["event_type"] for d in sent.json()["data"]] == ["commission.approved"]
    async with tenant_db(tenant.slug) as session:
        data = (await session.execute(text(
            "SELECT data FROM outgoing_events WHERE type = 'commission.approved'"))).scalar_one()
    assert (data["id"], data["status"], data["amount"]) == (
        held["id"], "approved", approved["amount"])

    paid = await client.post(f"/v1/commissions/{held['id']}/mark-paid",
                             headers=tenant.headers)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid" and paid.json()["paid_at"]
    assert_error(await client.post(f"/v1/commissions/{held['id']}/mark-paid",
                                   headers=tenant.headers), 409, "commission_not_approved")
    assert_error(await client.post(f"/v1/commissions/{uuid.uuid4()}/mark-paid",
                                   headers=tenant.headers), 404)
    trail = await client.get("/v1/audit-log", headers=tenant.headers,
                             params={"entity_type": "commission", "entity_id": held["id"]})
    assert [e["action"] for e in trail.json()["data"]] == ["commission.paid"]
    ledger = await balances(client, tenant, "USD")
    assert (ledger["commissions/USD"], ledger["commissions_payable/USD"],
            ledger["cash_at_bank/USD"]) == (2_000, 0, -2_000)

    # paid out: a later refund leaves the commission as it is; the revenue still drops
    await confirm(client, tenant, await refund(client, tenant, made["id"], amount=4_000))
    after = await commission_of(client, tenant, made["id"])
    assert (after["status"], after["amount"]) == ("paid", 2_000)
    codes = (await client.get("/v1/referral-codes", headers=tenant.headers)).json()["data"]
    assert [c["referred_revenue_usd"] for c in codes] == [6_000]
    assert (await assert_reports_agree(client, tenant))["totals"]["commissions"] == 2_000


async def test_twenty_concurrent_paid_orders_of_one_referrer_lose_no_update(client,
                                                                           make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refrace")
    code = (await make_code(client, tenant, "Crowd")).json()  # 10 % off: $90 each
    started = [await start_paying(client, tenant, 10_000, referral_code="crowd")
               for _ in range(20)]
    results = await asyncio.gather(*(succeed(tenant.slug, payment) for _, payment in started))
    assert results == [True] * 20
    state = await code_state(client, tenant, code["id"])
    assert (state["referred_revenue_usd"], state["tier"]) == (20 * 9_000, "gold")
    made = await commissions(client, tenant)
    assert len(made) == 20
    # each saw the revenue of the ones before it: $0..$450 bronze (6), $540..$1,440
    # silver (11), $1,530..$1,710 gold (3); a lost update would leave more at bronze
    assert Counter(c["tier"] for c in made) == {"bronze": 6, "silver": 11, "gold": 3}
    assert sum(c["amount"] for c in made) == 6 * 1_800 + 11 * 2_250 + 3 * 2_700
    assert [t for _, t in await tier_notices(tenant.slug)] == ["silver", "gold"]


async def test_a_vnd_order_is_valued_in_usd_at_the_recorded_rate(client, make_tenant,
                                                                 owner_headers):
    tenant = await sandbox_shop(client, make_tenant, "refvnd")
    code = (await make_code(client, tenant, "Dong", discount_percent=0)).json()
    response = await client.put("/v1/owner/fx-rates", headers=owner_headers,
                                json={"rates": {"VND": "25000"}})
    assert response.status_code == 200, response.text
    try:
        made = await pay(client, tenant, 13_000_000, "VND", referral_code="dong")
    finally:
        await client.put("/v1/owner/fx-rates", headers=owner_headers,
                         json={"rates": {"VND": None}})
    paid = await commission_of(client, tenant, made["id"])
    # 20 % of 13,000,000 VND = 2,600,000 VND; at 25,000 VND per USD: $104.00
    assert {k: paid[k] for k in ("base_amount", "amount", "currency", "amount_usd",
                                 "fx_rate", "fx_source", "tier")} == {
        "base_amount": 13_000_000, "amount": 2_600_000, "currency": "VND",
        "amount_usd": 10_400, "fx_rate": "25000", "fx_source": "manual", "tier": "bronze"}
    # the order's $520 moves the referrer to silver
    state = await code_state(client, tenant, code["id"])
    assert (state["referred_revenue_usd"], state["tier"]) == (52_000, "silver")


async def test_commission_settings_are_validated_and_custom_tiers_apply(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "refsettings")
    defaults = (await client.get("/v1/settings", headers=tenant.headers)).json()
    assert defaults["commission_hold_days"] == 14
    assert [(t["name"], t["min_referred_revenue_usd"], t["rate_percent"])
            for t in defaults["commission_tiers"]] == [
        ("bronze", 0, "20"), ("silver", 50_000, "25"), ("gold", 150_000, "30"),
        ("platinum", 500_000, "35")]

    def tier(name: str, low: Any, rate: Any) -> dict[str, Any]:
        return {"name": name, "min_referred_revenue_usd": low, "rate_percent": rate}

    for bad in ([], [tier("a", 100, "10")], [tier("a", 0, "10"), tier("b", 0, "20")],
                [tier("a", 0, "10"), tier("b", 500, "20"), tier("c", 400, "30")],
                [tier("a", 0, "101")], [tier("a", 0, "-1")], [tier("a", 0, "12.345")],
                [tier("a", 0, "NaN")], [tier("a", 0, "10"), tier("a", 10, "20")],
                [tier("a", -5, "10")], [tier("a", 0.5, "10")], [{"name": "a"}],
                "gold", [tier("", 0, "10")]):
        response = await client.patch("/v1/settings", headers=tenant.headers,
                                      json={"commission_tiers": bad})
        assert 400 <= response.status_code < 500, (bad, response.text)
    for days in (-1, 3651, 1.5):
        response = await client.patch("/v1/settings", headers=tenant.headers,
                                      json={"commission_hold_days": days})
        assert 400 <= response.status_code < 500, (days, response.text)
    assert (await client.get("/v1/settings", headers=tenant.headers)).json() == defaults

    response = await client.patch("/v1/settings", headers=tenant.headers, json={
        "commission_tiers": [tier("starter", 0, "12.5"), tier("pro", 1_000, "40")]})
    assert response.status_code == 200, response.text
    code = (await make_code(client, tenant, "Custom", discount_percent=0)).json()
    assert code["tier"] == "starter"
    first = await commission_of(client, tenant, (await pay(client, tenant, 1_001,
                                                           referral_code="custom"))["id"])
    assert (first["tier"], first["rate_percent"], first["amount"]) == ("starter", "12.5", 125)
    second = await commission_of(client, tenant, (await pay(client, tenant, 1_000,
                                                            referral_code="custom"))["id"])
    assert (second["tier"], second["rate_percent"], second["amount"]) == ("pro", "40", 400)
    # null restores the defaults; the commissions keep the tier they were made with
    response = await client.patch("/v1/settings", headers=tenant.headers,
                                  json={"commission_tiers": None})
    assert response.json()["commission_tiers"] == defaults["commission_tiers"]
    assert (await code_state(client, tenant, code["id"]))["tier"] == "bronze"
    assert (await commission_of(client, tenant, first["order_id"]))["tier"] == "starter"


async def test_an_open_dispute_holds_approval_and_a_lost_one_cancels(client, make_tenant):
    from tests.workers.sandbox_events import event_body
    from tests.workers.test_payment_states import _apply

    tenant = await sandbox_shop(client, make_tenant, "refdispute")
    code = (await make_code(client, tenant, "Fight", discount_percent=0)).json()
    made, payment = await start_paying(client, tenant, 60_000, referral_code="fight")
    assert await succeed(tenant.slug, payment) is True
    await client.patch("/v1/settings", headers=tenant.headers,
                       json={"commission_hold_days": 0})

    def dispute(kind: str, status: str) -> bytes:
        return event_body(kind, {"id": f"dp_{made['id'][:8]}",
                                 "payment_id": payment["provider_payment_id"],
                                 "amount": 60_000, "currency": "USD", "status": status,
                                 "reason": "fraudulent"})

    assert await _apply(client, tenant, dispute("dispute.created",
                                                "needs_response")) == "processed"
    assert (await get_order(client, tenant, made["id"]))["payment_status"] == "disputed"
    assert await approve(tenant.slug) == 0  # not while the dispute is open
    assert await _apply(client, tenant, dispute("dispute.closed", "lost")) == "processed"
    lost = await commission_of(client, tenant, made["id"])
    assert (lost["status"], lost["amount"]) == ("cancelled", 12_000)
    state = await code_state(client, tenant, code["id"])
    assert (state["referred_revenue_usd"], state["tier"]) == (0, "bronze")
    ledger = await balances(client, tenant, "USD")
    assert (ledger.get("commissions/USD", 0), ledger.get("commissions_payable/USD", 0)) == (0, 0)
    assert await approve(tenant.slug) == 0


async def test_no_rate_in_any_layer_still_records_the_payment(client, make_tenant,
                                                              fx_runtime, rate_api):  # noqa: F811 - fixtures
    from tests.fx_api import forget_fx_caches

    tenant = await sandbox_shop(client, make_tenant, "refnorate")
    code = (await make_code(client, tenant, "Euro", discount_percent=0)).json()
    rate_api.set("down")  # no override, nothing stored, no fallback: no EUR rate at all
    first = await pay(client, tenant, 10_000, "EUR", referral_code="euro")
    assert (await get_order(client, tenant, first["id"]))["status"] == "paid"
    unvalued = await commission_of(client, tenant, first["id"])
    assert {k: unvalued[k] for k in ("amount", "currency", "amount_usd", "fx_rate",
                                     "fx_source", "tier", "status")} == {
        "amount": 2_000, "currency": "EUR", "amount_usd": None, "fx_rate": None,
        "fx_source": None, "tier": "bronze", "status": "pending"}
    assert (await code_state(client, tenant, code["id"]))["referred_revenue_usd"] == 0

    rate_api.set("up")  # EUR 0.91 per USD
    forget_fx_caches()
    second = await pay(client, tenant, 10_000, "EUR", referral_code="euro")
    valued = await commission_of(client, tenant, second["id"])
    # 2,000 EUR cents / 0.91 = 2,197.8 US cents; the order's 10,000 / 0.91 = 10,989.01
    assert (valued["amount_usd"], valued["fx_rate"], valued["fx_source"]) == (
        2_198, "0.91", "api")
    assert (await code_state(client, tenant, code["id"]))["referred_revenue_usd"] == 10_989


async def test_a_commissions_rate_falls_through_the_fx_layers(client, make_tenant,
                                                              owner_headers, fx_runtime,
                                                              rate_api):  # noqa: F811
    """Paid VND orders through HTTP while the rate API is up, then slow past its timeout,
    then answering garbage: each commission says which layer valued it (SPEC 3a, FX)."""
    import dataclasses
    from decimal import Decimal

    from tests.fx_api import age_fetched_rates, forget_fx_caches, wipe_rates

    tenant = await sandbox_shop(client, make_tenant, "reffx")
    await make_code(client, tenant, "Dong", discount_percent=0)

    async def valued(mode: str) -> tuple[str, str]:
        rate_api.set(mode)
        forget_fx_caches()
        made = await pay(client, tenant, 500_000, "VND", referral_code="dong")
        found = await commission_of(client, tenant, made["id"])
        return found["fx_source"], found["fx_rate"]

    assert await valued("up") == ("api", "25000")
    await age_fetched_rates()  # older than PAYMESH_FX_TTL_SECONDS
    assert await valued("slow") == ("expired", "25000")  # past the timeout: the last known
    await wipe_rates()
    fx_runtime.settings = dataclasses.replace(fx_runtime.settings,
                                              fx_fallback={"VND": Decimal("24500")})
    assert await valued("garbage") == ("fallback", "24500")
    assert await valued("error") == ("fallback", "24500")
    override = await client.put("/v1/owner/fx-rates", json={"rates": {"VND": "24000"}},
                                headers=owner_headers)
    assert override.status_code == 200, override.text
    assert await valued("down") == ("manual", "24000")
    # 20 % of 500,000 VND = 100,000 VND; at 24,000 per USD: 416.67 US cents → 417
    made = await commissions(client, tenant)
    assert sorted(c["amount_usd"] for c in made if c["fx_source"] == "manual") == [417]
    assert (await client.put("/v1/owner/fx-rates", json={"rates": {"VND": None}},
                             headers=owner_headers)).status_code == 200
