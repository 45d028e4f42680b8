"""End to end through HTTP for each external provider (issue 3).

Every test walks the same road a tenant and a customer do: the tenant configures the
provider (``PUT /v1/providers/{code}``), creates an order (``POST /v1/orders`` with an
``Idempotency-Key``) and starts its checkout; the customer pays on the provider's side;
the provider's signed webhook is POSTed to ``/webhooks/{tenant}/{code}``, stored and
processed; the order ends ``paid`` with exactly one balanced ledger posting. A forged
webhook is refused with a 4xx and stores nothing.

* ``stripe`` runs against a real localstripe: the app's SDK calls it through the catalog's
  ``sandbox_api_base_url``, the test confirms the PaymentIntent as Stripe.js would, and
  localstripe itself delivers the signed ``payment_intent.succeeded`` to the live API
  process, which stores it for a real Dramatiq worker to apply.
* ``paystack`` and ``flutterwave`` run against their documented-payload fakes
  (``tests/providers``), reached by the in-process app through a routed HTTP transport;
  the webhook is signed exactly as the provider signs it, and the stored event is applied
  in-process with :func:`tenant.webhooks.processing.process` (the worker's own function).
* ``bank_transfer``: SePay-style bank-feed webhooks are matched by transfer reference and
  amount; an exact transfer pays, an under- or over-payment is flagged for review and
  never marks the order paid, and a transfer nobody can match is kept but pays nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from providers.bank_transfer import transfer_reference
from tests.e2e.provider_fakes import (
    assert_paid_once,
    catalog_pointed_at,
    configure,
    create_order,
    fake_base_url,
    get_order,
    inbox,
    ledger_for,
    payments_of,
    process_in_process,
    routed_http,
    start_checkout,
)
from tests.providers.conftest import localstripe_url  # noqa: F401  (session fixture)
from tests.providers.fake_paystack import SECRET as PAYSTACK_SECRET
from tests.providers.fake_paystack import FakePaystack
from tests.providers.test_flutterwave import HASH as FLUTTERWAVE_HASH
from tests.providers.test_flutterwave import SECRET as FLUTTERWAVE_SECRET
from tests.providers.test_flutterwave import FakeFlutterwave
from tests.providers.test_flutterwave import _dump as flutterwave_json

pytestmark = [
    pytest.mark.asyncio,
    # the Stripe SDK's HTTPXClient posts form bodies with ``data=`` bytes
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


async def refused(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                  code: str | None = "invalid_signature") -> None:
    """The webhook door answers 400 and names why (the event is never stored)."""
    response = await client.post(url, content=body, headers=headers)
    assert response.status_code == 400, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code, response.text


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ----------------------------------------------------------------------------- stripe


STRIPE_SECRET = "sk_test_paymesh_e2e"


async def test_stripe_against_localstripe_with_real_webhook_delivery(
        client, make_tenant, owner_headers, live_api, start_worker, localstripe_url):  # noqa: F811
    tenant = await make_tenant("stripe", currency="USD")
    webhook_secret = f"whsec_{uuid.uuid4().hex}"
    hook_name = f"paymesh-e2e-{tenant.slug}"
    hook_url = f"{localstripe_url}/_config/webhooks/{hook_name}"
    async with catalog_pointed_at(client, owner_headers, "stripe", localstripe_url), \
            httpx.AsyncClient(timeout=10) as http:
        configured = await configure(client, tenant, "stripe", {
            "public_key": "pk_test_paymesh_e2e", "secret_key": STRIPE_SECRET,
            "webhook_secret": webhook_secret})
        assert configured["environment"] == "sandbox" and configured["has_webhook_secret"]
        # localstripe delivers to every registered hook, signed with that hook's secret
        registered = await http.post(hook_url, data={
            "url": f"{live_api}/webhooks/{tenant.slug}/stripe", "secret": webhook_secret,
            "events[]": ["payment_intent.succeeded"]})
        registered.raise_for_status()
        start_worker()
        browser_http = stripe.HTTPXClient()
        try:
            order = await create_order(client, tenant, 4_250, "USD", "Annual check-up")
            checkout = await start_checkout(client, tenant, order["id"], "stripe")
            intent_id = checkout["payment"]["provider_payment_id"]
            assert intent_id.startswith("pi_") and checkout["payment"]["status"] == "pending"
            assert checkout["client_secret"].startswith(intent_id)
            assert (await get_order(client, tenant, order["id"]))["payment_status"] == "pending"

            # the browser (Stripe.js): attach the test card, confirm the PaymentIntent
            browser = stripe.StripeClient(STRIPE_SECRET, base_addresses={"api": localstripe_url},
                                          http_client=browser_http)
            intent = (await browser.v1.payment_intents.retrieve_async(intent_id)).to_dict()
            assert (intent["amount"], intent["currency"]) == (4_250, "usd")
            assert intent["metadata"]["order_id"] == order["id"]
            assert intent["metadata"]["tenant"] == tenant.slug
            await browser.v1.payment_intents.update_async(intent_id,
                                                          {"payment_method": "pm_card_visa"})
            confirmed = await browser.v1.payment_intents.confirm_async(intent_id)
            assert confirmed.status == "succeeded"

            async def paid() -> bool:
                return (await get_order(client, tenant, order["id"]))["status"] == "paid"

            await wait_for(paid, 30, "localstripe's webhook → live API → worker → paid")
        finally:
            await browser_http.close_async()
            # no delete in localstripe: narrow the hook to an event type that never happens
            await http.post(hook_url, data={"url": f"{live_api}/unused", "secret": "x",
                                            "events[]": ["paymesh.disabled"]})

    await assert_paid_once(client, tenant, order, "stripe", fee=0)
    events = [e for e in await inbox(client, tenant, "stripe")
              if (e["normalized"] or {}).get("provider_payment_id") == intent_id]
    assert len(events) == 1, events
    event = events[0]
    assert event["provider_event_id"].startswith("evt_")
    assert (event["type"], event["status"]) == ("payment.succeeded", "processed")
    assert event["normalized"]["reference"] == order["id"]

    # a forged delivery (right shape, wrong key / tampered body) is refused, never stored
    body = json.dumps({"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
                       "created": int(time.time()), "data": {"object": {
                           "id": intent_id, "object": "payment_intent", "amount": 1,
                           "currency": "usd", "status": "succeeded"}}}).encode()
    stamp = int(time.time())

    def signature(key: str, payload: bytes) -> str:
        mac = hmac.new(key.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={stamp},v1={mac}"

    url = f"/webhooks/{tenant.slug}/stripe"
    await refused(client, url, body, {"Stripe-Signature": signature("whsec_wrong", body)})
    await refused(client, url, body.replace(b'"amount": 1', b'"amount": 2'),
                  {"Stripe-Signature": signature(webhook_secret, body)})
    await refused(client, url, body, {}, code=None)
    # correctly signed an hour ago: a replayed capture, refused as stale
    stamp -= 3600
    await refused(client, url, body, {"Stripe-Signature": signature(webhook_secret, body)},
                  code="stale_signature")
    assert not [e for e in await inbox(client, tenant) if e["provider_event_id"] == "evt_forged"]
    assert len(await ledger_for(client, tenant)) == 1


async def test_stripe_missed_webhook_is_recovered_by_paymesh_reconcile(
        client, make_tenant, owner_headers, localstripe_url):  # noqa: F811
    """No webhook reaches this tenant; ``paymesh reconcile`` (a real CLI process) asks
    localstripe with the tenant's own keys and settles the order through the same path."""
    tenant = await make_tenant("stripe-miss", currency="USD")
    async with catalog_pointed_at(client, owner_headers, "stripe", localstripe_url):
        await configure(client, tenant, "stripe", {
            "public_key": "pk_test_paymesh_e2e", "secret_key": STRIPE_SECRET,
            "webhook_secret": f"whsec_{uuid.uuid4().hex}"})
        order = await create_order(client, tenant, 1_999, "USD")
        checkout = await start_checkout(client, tenant, order["id"], "stripe")
        intent_id = checkout["payment"]["provider_payment_id"]
        browser_http = stripe.HTTPXClient()
        try:
            browser = stripe.StripeClient(STRIPE_SECRET, base_addresses={"api": localstripe_url},
                                          http_client=browser_http)
            await browser.v1.payment_intents.update_async(intent_id,
                                                          {"payment_method": "pm_card_visa"})
            assert (await browser.v1.payment_intents.confirm_async(intent_id)).status == (
                "succeeded")
        finally:
            await browser_http.close_async()
        assert (await get_order(client, tenant, order["id"]))["status"] == "pending_payment"
        assert await inbox(client, tenant) == []

        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "paymesh"), "reconcile", "--tenant", tenant.slug,
            env={**os.environ, "PAYMESH_RECONCILE_AFTER_SECONDS": "0"},
            cwd=Path(__file__).resolve().parents[2],
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 45)
        assert process.returncode == 0, output.decode()[-2000:]
        assert "reconciled 1 payment(s)" in output.decode(), output.decode()[-2000:]

    await assert_paid_once(client, tenant, order, "stripe", fee=0)
    audit = await client.get("/v1/audit-log", headers=tenant.headers,
                             params={"action": "payment.succeeded"})
    assert [r["actor_kind"] for r in audit.json()["data"]] == ["system"]


# ----------------------------------------------------------------------------- paystack


def paystack_signed(body: bytes, key: str = PAYSTACK_SECRET) -> dict[str, str]:
    return {"x-paystack-signature": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
            "content-type": "application/json"}


async def test_paystack_through_its_documented_fake(app, client, make_tenant, owner_headers):
    fake = FakePaystack()
    base = fake_base_url()
    tenant = await make_tenant("paystack", currency="NGN")
    async with routed_http(app) as routes, \
            catalog_pointed_at(client, owner_headers, "paystack", base):
        routes.add(base, fake)
        await configure(client, tenant, "paystack",
                        {"public_key": "pk_test_paymesh_e2e", "secret_key": PAYSTACK_SECRET})
        order = await create_order(client, tenant, 250_000, "NGN", "Lens kit")  # ₦2,500.00
        checkout = await start_checkout(client, tenant, order["id"], "paystack")
        assert routes.refused == []

    reference = checkout["payment"]["provider_payment_id"]
    assert checkout["redirect_url"] == f"https://checkout.paystack.com/{reference[:6]}access"
    method, path, sent = fake.sent[0]
    assert (method, path) == ("POST", "/transaction/initialize")
    assert (sent["amount"], sent["currency"], sent["reference"]) == (250_000, "NGN", reference)
    assert sent["email"] == "patient@example.com"
    assert sent["metadata"]["order_id"] == order["id"]
    assert sent["callback_url"].endswith("/success") and f"/pay/{tenant.slug}/" in sent["callback_url"]

    # the customer pays on Paystack's page; Paystack signs the charge.success webhook
    transaction = fake.pay(reference)
    body = json.dumps({"event": "charge.success", "data": transaction}).encode()
    url = f"/webhooks/{tenant.slug}/paystack"

    await refused(client, url, body, paystack_signed(body, "sk_test_someone_else"))
    await refused(client, url, body.replace(b'"amount": 250000', b'"amount": 1'),
                  paystack_signed(body))
    await refused(client, url, body, {"content-type": "application/json"})
    assert await inbox(client, tenant) == []

    delivered = await client.post(url, content=body, headers=paystack_signed(body))
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {"received": True, "duplicate": False}
    [event] = await inbox(client, tenant)
    assert (event["provider"], event["type"], event["status"]) == (
        "paystack", "payment.succeeded", "received")
    assert event["provider_event_id"] == f"charge.success:{transaction['id']}"
    assert await process_in_process(tenant, event["id"]) == "processed"

    await assert_paid_once(client, tenant, order, "paystack", fee=transaction["fees"])
    # at-least-once delivery: the same webhook again is acknowledged and changes nothing
    again = await client.post(url, content=body, headers=paystack_signed(body))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert await process_in_process(tenant, event["id"]) == "processed"
    assert len(await ledger_for(client, tenant)) == 1


# ----------------------------------------------------------------------------- flutterwave


async def test_flutterwave_through_its_documented_fake(app, client, make_tenant, owner_headers):
    fake = FakeFlutterwave()
    base = fake_base_url("/v3")
    tenant = await make_tenant("flutterwave", currency="NGN")
    async with routed_http(app) as routes, \
            catalog_pointed_at(client, owner_headers, "flutterwave", base):
        routes.add(base, fake)
        await configure(client, tenant, "flutterwave", {
            "public_key": "FLWPUBK_TEST-paymesh-X", "secret_key": FLUTTERWAVE_SECRET,
            "webhook_secret": FLUTTERWAVE_HASH})
        order = await create_order(client, tenant, 123_456, "NGN", "Lens kit")  # ₦1,234.56
        checkout = await start_checkout(client, tenant, order["id"], "flutterwave")
        assert routes.refused == []

    tx_ref = checkout["payment"]["provider_payment_id"]
    assert checkout["redirect_url"] == (
        f"https://checkout.flutterwave.com/v3/hosted/pay/{tx_ref[:8]}")
    method, path, sent = fake.sent[0]
    assert (method, path) == ("POST", "/v3/payments")
    assert (sent["tx_ref"], sent["amount"], sent["currency"]) == (tx_ref, "1234.56", "NGN")
    assert sent["customer"]["email"] == "patient@example.com"
    assert sent["redirect_url"].endswith("/success")  # the pay page's return URL by default
    assert sent["meta"]["order_id"] == order["id"]

    # the customer pays on Flutterwave's page; the webhook carries the secret hash
    transaction = fake.complete(tx_ref, amount="1234.56")
    body = flutterwave_json({"event": "charge.completed", "data": transaction})
    url = f"/webhooks/{tenant.slug}/flutterwave"

    await refused(client, url, body, {"verif-hash": "not-the-secret-hash"})
    forged_mac = hmac.new(b"not-the-secret-hash", body, hashlib.sha256).hexdigest()
    await refused(client, url, body, {"flutterwave-signature": forged_mac})
    await refused(client, url, body, {"content-type": "application/json"})
    assert await inbox(client, tenant) == []

    delivered = await client.post(url, content=body, headers={
        "verif-hash": FLUTTERWAVE_HASH, "content-type": "application/json"})
    assert delivered.status_code == 200, delivered.text
    [event] = await inbox(client, tenant)
    assert (event["type"], event["status"]) == ("payment.succeeded", "received")
    assert event["normalized"]["amount"] == 123_456  # "1234.56" major → minor, exactly
    assert await process_in_process(tenant, event["id"]) == "processed"

    await assert_paid_once(client, tenant, order, "flutterwave", fee=1_728)  # app_fee 17.28


# ----------------------------------------------------------------------------- bank transfer


FEED_KEY = "sepay-feed-key-e2e"
BANK = {"account_name": "PHONG KHAM AN BINH", "account_number": "0123499999",
        "bank_name": "Vietcombank"}
_feed_ids = iter(range(92_700, 93_000))


def feed(content: str, amount: int, *, code: str | None = None) -> bytes:
    """One incoming transfer as a SePay-style bank feed posts it (VND: no decimals)."""
    return json.dumps({
        "id": next(_feed_ids), "gateway": "Vietcombank", "transactionDate": "2024-03-25 14:02:37",
        "accountNumber": BANK["account_number"], "code": code, "content": content,
        "transferType": "in", "transferAmount": amount, "accumulated": 19_077_000,
        "subAccount": None, "referenceCode": f"MBVCB.{uuid.uuid4().int % 10**10}",
        "description": "",
    }).encode()


FEED_HEADERS = {"Authorization": f"Apikey {FEED_KEY}", "Content-Type": "application/json"}


async def post_feed(client: httpx.AsyncClient, tenant: Any, body: bytes) -> dict[str, Any]:
    """Deliver one feed item, then apply the stored event as the worker would."""
    before = {e["id"] for e in await inbox(client, tenant)}
    response = await client.post(f"/webhooks/{tenant.slug}/bank_transfer", content=body,
                                 headers=FEED_HEADERS)
    assert response.status_code == 200, response.text
    [event] = [e for e in await inbox(client, tenant) if e["id"] not in before]
    event["processed_as"] = await process_in_process(tenant, event["id"])
    return event


async def test_bank_transfer_feed_matches_reference_and_amount(client, make_tenant):
    tenant = await make_tenant("bank", currency="VND")
    await configure(client, tenant, "bank_transfer",
                    {"webhook_secret": FEED_KEY, "config": BANK})
    total = 2_277_000
    exact, short, over = [await create_order(client, tenant, total, "VND", f"Visit {n}")
                          for n in ("A", "B", "C")]
    refs = {}
    for order in (exact, short, over):
        checkout = await start_checkout(client, tenant, order["id"], "bank_transfer")
        instructions = checkout["instructions"]
        assert {k: instructions[k] for k in BANK} == BANK
        assert (instructions["amount"], instructions["currency"]) == (total, "VND")
        reference = instructions["reference"]
        assert reference == transfer_reference(order["id"]) == (
            checkout["payment"]["provider_payment_id"])
        assert checkout["redirect_url"] is None and checkout["payment"]["status"] == "pending"
        refs[order["id"]] = reference

    # forged feeds: wrong key, wrong scheme, no header → 4xx, nothing stored
    body = feed(f"{refs[exact['id']]} thanh toan", total)
    url = f"/webhooks/{tenant.slug}/bank_transfer"
    await refused(client, url, body, {"Authorization": "Apikey guessed-key"})
    await refused(client, url, body, {"Authorization": f"Bearer {FEED_KEY}"})
    await refused(client, url, body, {})
    assert await inbox(client, tenant) == []

    # exact amount, reference quoted in the transfer text → paid
    event = await post_feed(client, tenant, body)
    assert (event["type"], event["processed_as"]) == ("payment.succeeded", "processed")
    # the account has no configured currency and SePay sends none: the exact figure
    # travels with the event and is read in the attempt's currency when applied
    assert event["normalized"]["data"]["amount_major"] == str(total)
    await assert_paid_once(client, tenant, exact, "bank_transfer", fee=0)

    # an underpayment (reference typed in lower case, glued into bank text) and an
    # overpayment (reference in the feed's code field): flagged for review, not paid
    for order, amount, text, code in (
            (short, 2_000_000, f"MBVCB.3278907687.{refs[short['id']].lower()}.CT tu 0123", None),
            (over, 2_500_000, "chuyen tien kham benh", refs[over["id"]])):
        event = await post_feed(client, tenant, feed(text, amount, code=code))
        assert (event["type"], event["processed_as"]) == ("payment.succeeded", "processed")
        assert event["normalized"]["provider_payment_id"] == refs[order["id"]]
        state = await get_order(client, tenant, order["id"])
        assert state["status"] == "pending_payment" and state["payment_status"] != "paid"
        [attempt] = await payments_of(client, tenant, order["id"])
        assert attempt["status"] == "needs_review"
        assert attempt["flags"]["amount_mismatch"] == {
            "amount": amount, "currency": "VND", "expected_amount": total,
            "expected_currency": "VND"}
        assert state["flags"]["payment_amount_mismatch"] == attempt["id"]
        audit = await client.get("/v1/audit-log", headers=tenant.headers, params={
            "action": "payment.amount_mismatch", "entity_id": attempt["id"]})
        [row] = audit.json()["data"]
        assert row["entity_type"] == "payment" and row["data"]["order_id"] == order["id"]
        assert (row["data"]["amount"], row["data"]["expected_amount"]) == (amount, total)
        assert await ledger_for(client, tenant, order["id"]) == []
        # a redelivery of the same feed item is a duplicate; the flag is not doubled
        assert (await client.post(url, content=feed(text, amount, code=code),
                                  headers=FEED_HEADERS)).status_code == 200

    # a transfer that quotes no reference at all: stored, processed, nothing paid
    stray = await post_feed(client, tenant, feed("tien thue nha thang 3", total))
    assert (stray["type"], stray["processed_as"]) == ("ignored", "processed")
    assert stray["normalized"]["data"]["unmatched"] is True
    # a reference-shaped token that belongs to no order: stored and kept for retry (a
    # payment attempt may yet appear), never applied to anything
    unknown = transfer_reference(str(uuid.uuid4()))
    orphan = await post_feed(client, tenant, feed(f"{unknown} thanh toan", total))
    assert orphan["type"] == "payment.succeeded" and orphan["processed_as"] == "failed"
    [stored] = [e for e in await inbox(client, tenant) if e["id"] == orphan["id"]]
    assert "no payment attempt" in stored["last_error"]
    # an outgoing transfer on the same account is not a payment
    outgoing = json.loads(feed(f"{refs[short['id']]} hoan tien", total))
    outgoing["transferType"] = "out"
    refund_like = await post_feed(client, tenant, json.dumps(outgoing).encode())
    assert (refund_like["type"], refund_like["processed_as"]) == ("ignored", "processed")

    assert len(await ledger_for(client, tenant)) == 1
    for order in (short, over):
        assert (await get_order(client, tenant, order["id"]))["status"] == "pending_payment"
