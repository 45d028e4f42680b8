"""Paid digital products grant entitlements (GET /v1/entitlements); disputes suspend,
restore and revoke them, a full provider refund revokes them; a lost dispute's amount is
posted as a loss in the ledger.

Sandbox events are delivered through the webhook door and applied by the worker's own
function, in-process; results are read back through the API.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.workers.helpers import ledger_for, order, sandbox_shop, success_event
from tests.workers.sandbox_events import event_body
from tests.workers.test_payment_states import _apply

pytestmark = pytest.mark.asyncio

EMAIL = "Reader@Example.com"


async def _product(client: Any, tenant: Any, kind: str, price: int = 1_500) -> str:
    response = await client.post("/v1/products", headers=tenant.headers, json={
        "name": f"{kind} thing", "kind": kind, "price": price, "currency": "USD"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def _order(client: Any, tenant: Any, lines: list[tuple[str, int]],
                 email: str = EMAIL) -> dict[str, Any]:
    """An order of products ``[(product_id, quantity)]`` with a live sandbox attempt."""
    created = await client.post(
        "/v1/orders", headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"customer_email": email, "currency": "USD",
              "items": [{"product_id": p, "quantity": q} for p, q in lines]})
    assert created.status_code == 201, created.text
    checkout = await client.post(
        f"/v1/orders/{created.json()['id']}/checkout", json={"provider": "sandbox"},
        headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    return {"order_id": created.json()["id"],
            "payment_id": checkout.json()["payment"]["provider_payment_id"],
            "amount": created.json()["total"], "currency": "USD"}


async def _paid(client: Any, tenant: Any, lines: list[tuple[str, int]],
                email: str = EMAIL) -> dict[str, Any]:
    o = await _order(client, tenant, lines, email)
    assert await _apply(client, tenant, success_event(o)) == "processed"
    return o


async def _entitlements(client: Any, tenant: Any, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/entitlements", headers=tenant.headers,
                                params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _dispute(o: dict[str, Any], kind: str, status: str) -> bytes:
    return event_body(kind, {"id": f"dp_{o['order_id'][:8]}", "payment_id": o["payment_id"],
                             "amount": o["amount"], "currency": "USD", "status": status,
                             "reason": "fraudulent"})


def _refund(o: dict[str, Any], refund_id: str, amount: int) -> bytes:
    return event_body("refund.succeeded", {"id": refund_id, "payment_id": o["payment_id"],
                                           "amount": amount, "currency": "USD"})


def _statuses(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["status"] for r in rows)


async def test_a_paid_digital_order_grants_one_entitlement_per_unit_once(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "ent")
    ebook = await _product(client, tenant, "digital")
    mug = await _product(client, tenant, "physical")
    call = await _product(client, tenant, "service")
    o = await _order(client, tenant, [(ebook, 2), (mug, 1), (call, 1)])
    assert await _entitlements(client, tenant, order_id=o["order_id"]) == []  # not paid yet
    assert await _apply(client, tenant, success_event(o, f"evt_{o['order_id']}")) == "processed"

    rows = await _entitlements(client, tenant, order_id=o["order_id"])
    assert len(rows) == 2
    assert {(r["product_id"], r["customer_email"], r["status"], r["revoked_at"])
            for r in rows} == {(ebook, EMAIL, "active", None)}
    keys = {r["license_key"] for r in rows}
    assert len(keys) == 2 and all(len(k) >= 40 for k in keys)
    assert all(r["granted_at"] and r["id"] for r in rows)

    # the capture delivered again (another event id, then the same one): nothing twice
    assert await _apply(client, tenant, success_event(o)) == "processed"
    assert await _apply(client, tenant, success_event(o, f"evt_{o['order_id']}")) == "processed"
    again = await _entitlements(client, tenant, order_id=o["order_id"])
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in rows)
    assert {r["license_key"] for r in again} == keys

    # physical and service products grant nothing
    plain = await _paid(client, tenant, [(mug, 3), (call, 2)])
    assert await _entitlements(client, tenant, order_id=plain["order_id"]) == []
    assert (await order(client, tenant, plain["order_id"]))["status"] != "pending_payment"


async def test_filters_and_bad_filters(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "entf")
    ebook = await _product(client, tenant, "digital")
    first = await _paid(client, tenant, [(ebook, 1)], email="one@example.com")
    second = await _paid(client, tenant, [(ebook, 3)], email="two@example.com")
    assert len(await _entitlements(client, tenant)) == 4
    mine = await _entitlements(client, tenant, customer_email="ONE@example.com")
    assert [r["order_id"] for r in mine] == [first["order_id"]]
    assert len(await _entitlements(client, tenant, customer_email="two@example.com",
                                   status="active")) == 3
    assert await _entitlements(client, tenant, status="revoked") == []
    assert await _entitlements(client, tenant, customer_email="nobody@example.com") == []
    page = await client.get("/v1/entitlements", headers=tenant.headers,
                            params={"order_id": second["order_id"], "limit": 2})
    assert page.status_code == 200 and page.json()["has_more"] is True
    assert len(page.json()["data"]) == 2

    for params, param in [({"status": "lost"}, "status"), ({"order_id": "nope"}, None),
                          ({"customer_email": "x" * 300}, "customer_email"),
                          ({"customer_email": ""}, "customer_email"),
                          ({"limit": 0}, "limit"), ({"page": 0}, "page")]:
        response = await client.get("/v1/entitlements", headers=tenant.headers, params=params)
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert error["type"] and error["code"] and error["message"]
        if param:
            assert error["param"] == param, (params, error)


async def test_disputes_suspend_restore_and_revoke(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "entd")
    ebook = await _product(client, tenant, "digital", price=2_000)
    won = await _paid(client, tenant, [(ebook, 1)])
    lost = await _paid(client, tenant, [(ebook, 2)])
    for o in (won, lost):
        assert await _apply(client, tenant, _dispute(o, "dispute.created",
                                                     "needs_response")) == "processed"
    assert _statuses(await _entitlements(client, tenant, order_id=lost["order_id"])) == [
        "suspended", "suspended"]
    assert len(await _entitlements(client, tenant, status="suspended")) == 3

    assert await _apply(client, tenant, _dispute(won, "dispute.closed", "won")) == "processed"
    assert await _apply(client, tenant, _dispute(lost, "dispute.closed", "lost")) == "processed"
    restored, = await _entitlements(client, tenant, order_id=won["order_id"])
    assert (restored["status"], restored["revoked_at"]) == ("active", None)
    gone = await _entitlements(client, tenant, order_id=lost["order_id"])
    assert _statuses(gone) == ["revoked", "revoked"] and all(r["revoked_at"] for r in gone)

    # the loss is posted: the hold leaves the disputes account for the losses, balanced
    journal = await ledger_for(client, tenant, lost["order_id"])
    assert sorted(t["kind"] for t in journal) == ["dispute.lost", "dispute.opened",
                                                  "payment.captured"]
    for t in journal:
        assert sum(e["debit"] for e in t["entries"]) == sum(e["credit"] for e in t["entries"])
    loss, = [t for t in journal if t["kind"] == "dispute.lost"]
    assert {(e["account"], e["debit"], e["credit"]) for e in loss["entries"]} == {
        ("dispute_losses", lost["amount"], 0), ("disputes", 0, lost["amount"])}
    assert sorted(t["kind"] for t in await ledger_for(client, tenant, won["order_id"])) == [
        "dispute.opened", "dispute.won", "payment.captured"]
    balances = await client.get("/v1/ledger/balances", headers=tenant.headers,
                                params={"currency": "USD"})
    assert balances.status_code == 200, balances.text
    by_account = {b["account"]: b["balance"] for b in balances.json()["data"]}
    assert by_account["dispute_losses"] == lost["amount"]
    assert by_account.get("disputes", 0) == 0  # both holds released
    trial, = balances.json()["trial_balance"]
    assert trial["balanced"] and trial["debits"] == trial["credits"]

    # the closing delivered again: no second loss, nothing moves back
    assert await _apply(client, tenant, _dispute(lost, "dispute.closed", "lost")) == "processed"
    assert len(await ledger_for(client, tenant, lost["order_id"])) == 3


async def test_a_full_provider_refund_revokes_a_partial_one_does_not(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "entr")
    ebook = await _product(client, tenant, "digital", price=3_000)
    o = await _paid(client, tenant, [(ebook, 2)])
    assert await _apply(client, tenant, _refund(o, "re_part", 1_000)) == "processed"
    assert _statuses(await _entitlements(client, tenant, order_id=o["order_id"])) == [
        "active", "active"]
    assert await _apply(client, tenant, _refund(o, "re_rest", o["amount"] - 1_000)) == \
        "processed"
    rows = await _entitlements(client, tenant, order_id=o["order_id"])
    assert _statuses(rows) == ["revoked", "revoked"] and all(r["revoked_at"] for r in rows)
    assert (await order(client, tenant, o["order_id"]))["status"] == "refunded"


async def test_a_lost_dispute_posts_the_providers_fee_as_a_loss(client, make_tenant):
    tenant = await sandbox_shop(client, make_tenant, "entfee")
    ebook = await _product(client, tenant, "digital", price=2_500)
    o = await _paid(client, tenant, [(ebook, 1)])
    assert await _apply(client, tenant, _dispute(o, "dispute.created",
                                                 "needs_response")) == "processed"
    closing = {"id": f"dp_{o['order_id'][:8]}", "payment_id": o["payment_id"],
               "amount": o["amount"], "currency": "USD", "status": "lost", "fee": 1_500}
    assert await _apply(client, tenant, event_body("dispute.closed", closing)) == "processed"
    loss, = [t for t in await ledger_for(client, tenant, o["order_id"])
             if t["kind"] == "dispute.lost"]
    assert {(e["account"], e["debit"], e["credit"]) for e in loss["entries"]} == {
        ("dispute_losses", o["amount"] + 1_500, 0), ("disputes", 0, o["amount"]),
        ("provider_clearing:sandbox", 0, 1_500)}
    assert loss["data"]["fee"] == 1_500
    balances = (await client.get("/v1/ledger/balances", headers=tenant.headers)).json()
    assert all(t["balanced"] for t in balances["trial_balance"])
