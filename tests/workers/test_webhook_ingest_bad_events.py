"""Webhook ingest: one bad signed event never harms another (issue #11).

Concurrent events share inbox batches (tenant.webhooks.inbox): an event the inbox cannot
hold is refused on its own with a 4xx, and its batch-mates are stored and answered 200.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from tests.integration.test_owner_catalog import assert_error
from tests.workers.sandbox_events import signed
from tests.workers.test_webhook_ingest import inbox, sandbox_tenant

pytestmark = pytest.mark.asyncio


def envelope(event_id: str, event_type: str = "noise.event", created: int | None = None,
             obj: dict | None = None) -> bytes:
    """A sandbox event body; ``json.dumps`` writes NUL as ``\\u0000`` and a lone
    surrogate as ``\\ud800``, as a provider's JSON encoder would."""
    return json.dumps({"id": event_id, "type": event_type,
                       "created": int(time.time()) if created is None else created,
                       "data": {"object": obj or {"id": "x"}}}).encode()


async def post_all(client, url: str, bodies: list[bytes]):  # noqa: ANN001, ANN201
    return await asyncio.gather(*[client.post(url, content=b, headers=signed(b))
                                  for b in bodies])


async def test_a_nul_in_one_event_id_fails_only_that_event(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    good = [envelope(f"evt_mate_{n}") for n in range(40)]
    bad = [envelope("evt_nul_\u0000_x"), envelope("evt_ctl_\u0007"),
           envelope("evt_surrogate_\ud800"), envelope(""), envelope("evt_tab\t")]
    bodies = good[:20] + bad + good[20:]
    answers = await post_all(client, url, bodies)
    by_body = dict(zip(bodies, answers, strict=True))
    for body in good:
        assert by_body[body].status_code == 200, by_body[body].text
        assert by_body[body].json() == {"received": True, "duplicate": False}
    for body in bad:
        assert_error(by_body[body], 400, "malformed_webhook")
    events = await inbox(client, tenant)
    assert sorted(e["provider_event_id"] for e in events) == sorted(
        f"evt_mate_{n}" for n in range(40))
    # a NUL in the path's provider code: not configured, not a database error
    body = envelope("evt_path_nul")
    assert_error(await client.post(f"/webhooks/{tenant.slug}/sand%00box", content=body,
                                   headers=signed(body)), 404)


async def test_nul_in_other_fields_is_stored_safely(client, make_tenant):
    """The raw body is kept as sent; the normalized event (jsonb) gets U+FFFD instead."""
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    bodies = [envelope("evt_nul_type", "noise\u0000type"),
              envelope("evt_nul_ref", "payment.succeeded",
                       obj={"id": "pay_\u0000", "amount": 100, "currency": "USD",
                            "reference": "ord\u0000er"}),
              *[envelope(f"evt_plain_{n}") for n in range(10)]]
    answers = await post_all(client, url, bodies)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    events = {e["provider_event_id"]: e for e in await inbox(client, tenant)}
    assert len(events) == 12
    assert events["evt_nul_type"]["normalized"]["data"] == {"type": "noise\ufffdtype"}
    paid = events["evt_nul_ref"]["normalized"]
    assert (paid["reference"], paid["provider_payment_id"]) == ("ord\ufffder", "pay_\ufffd")
    # sent again, each is a duplicate of itself: the dedupe key was stored whole
    again = await post_all(client, url, bodies[:2])
    assert all(r.status_code == 200 and r.json()["duplicate"] for r in again)


FEED_KEY = "bank-feed-key-bad-events"
FEED_HEADERS = {"Authorization": f"Apikey {FEED_KEY}", "Content-Type": "application/json"}


def feed(feed_id: object, content: str) -> bytes:
    return json.dumps({"id": feed_id, "gateway": "Vietcombank", "accountNumber": "01234",
                       "transactionDate": "2024-03-25 14:02:37", "code": None,
                       "content": content, "transferType": "in",
                       "transferAmount": 1000}).encode()


async def test_bank_feed_nul_and_lone_surrogates(client, make_tenant):
    """The bank feed's JSON decoder takes NUL and lone surrogates: in the id they are
    refused, elsewhere stored as U+FFFD; the batch-mates are stored either way."""
    tenant = await make_tenant("whbank", currency="VND")
    response = await client.put("/v1/providers/bank_transfer", headers=tenant.headers, json={
        "webhook_secret": FEED_KEY, "config": {
            "account_name": "PHONG KHAM", "account_number": "01234", "bank_name": "Vietcombank"}})
    assert response.status_code == 200, response.text
    url = f"/webhooks/{tenant.slug}/bank_transfer"
    good = [feed(1000 + n, f"plain transfer {n}") for n in range(20)]
    odd = [feed(2001, "nul\u0000here"), feed(2002, "lone\ud800surrogate")]
    bad = [feed("3001\u0000", "x"), feed("3002\udc00", "x"), feed("9" * 300, "x")]
    bodies = [*good[:10], *bad, *odd, *good[10:]]
    answers = await asyncio.gather(*[client.post(url, content=b, headers=FEED_HEADERS)
                                     for b in bodies])
    by_body = dict(zip(bodies, answers, strict=True))
    for body in good + odd:
        assert by_body[body].status_code == 200, by_body[body].text
    for body in bad:
        assert_error(by_body[body], 400, "malformed_webhook")
    events = {e["provider_event_id"]: e for e in await inbox(client, tenant)}
    assert sorted(events) == sorted([str(1000 + n) for n in range(20)] + ["2001", "2002"])
    assert events["2001"]["normalized"]["data"]["content"] == "nul\ufffdhere"
    assert events["2002"]["normalized"]["data"]["content"] == "lone\ufffdsurrogate"


async def test_event_ids_are_kept_whole_or_refused(client, make_tenant):
    """Ids were cut to 255 characters, so an event sharing the first 255 with another was
    answered "duplicate" and dropped."""
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    longest = "evt_" + "a" * 251
    assert len(longest) == 255
    stored = await post_all(client, url, [envelope(longest)])
    assert stored[0].status_code == 200 and stored[0].json()["duplicate"] is False
    for too_long in (longest + "b", longest + "c", "evt_" + "z" * 5000):
        response = await client.post(url, content=envelope(too_long),
                                     headers=signed(envelope(too_long)))
        error = assert_error(response, 400, "malformed_webhook")
        assert "255" in error["message"]
    events = await inbox(client, tenant)
    assert [e["provider_event_id"] for e in events] == [longest]


async def test_a_created_timestamp_out_of_range_is_a_4xx(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    for created in (10**20, -(10**20), 253402318800, 2**63):
        body = envelope(f"evt_created_{created}", "payment.succeeded", created=created,
                        obj={"id": "pay_1", "amount": 100, "currency": "USD"})
        assert_error(await client.post(url, content=body, headers=signed(body)), 400,
                     "malformed_webhook")
    # a signature timestamp too large for a float is refused too, not a 500
    body = envelope("evt_signed_far_future")
    far = signed(body, timestamp=10**400)
    assert_error(await client.post(url, content=body, headers=far), 400)
    assert await inbox(client, tenant) == []


async def test_deeply_nested_signed_body_is_a_4xx(client, make_tenant):
    tenant = await sandbox_tenant(client, make_tenant)
    url = f"/webhooks/{tenant.slug}/sandbox"
    nested = b'{"id":"evt_deep","type":"x","created":1,"data":{"object":' + \
        b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}}"
    response = await client.post(url, content=nested, headers=signed(nested))
    assert_error(response, 400)
    assert await inbox(client, tenant) == []


async def test_a_batch_the_database_refuses_is_settled_row_by_row(client, make_tenant,
                                                                  caplog):
    """Rows the service would refuse, crafted straight into the writer: the batch fails,
    each row is written again on its own and gets its own answer."""
    from core.runtime import get_runtime
    from owner.tenants.service import lookup
    from tenant.webhooks.inbox import InboxRow, InboxWriter, UnstorableEvent

    tenant = await sandbox_tenant(client, make_tenant)
    context = await lookup(get_runtime(), slug=tenant.slug)
    writer = InboxWriter(get_runtime(), writers=1)  # one writer: one batch

    def row(event_id: str, normalized: str = '{"type": "ignored"}') -> InboxRow:
        return InboxRow(provider="sandbox", provider_event_id=event_id, event_type="ignored",
                        body=b"{}", normalized=normalized)

    rows = [row(f"evt_row_{n}") for n in range(10)]
    refused = [row("evt_\u0000_in_text"), row("evt_nul_in_jsonb", '{"x": "a\\u0000b"}'),
               row("evt_too_long_" + "x" * 300), row("evt_surrogate_\udc80")]
    duplicate = row("evt_row_3")
    caplog.set_level(logging.WARNING, logger="tenant.webhooks.inbox")
    sent = [*rows[:5], *refused, duplicate, *rows[5:]]
    results = await asyncio.gather(*[writer.store(context, r) for r in sent],
                                   return_exceptions=True)
    assert "writing its rows one by one" in caplog.text
    for r, result in zip(sent, results, strict=True):
        if r in refused:
            assert isinstance(result, UnstorableEvent), result
            assert result.status_code == 400
        elif r is duplicate:
            assert result is None  # sent after its twin: a duplicate, not an error
        else:
            assert result is not None and not isinstance(result, BaseException), result
    events = await inbox(client, tenant)
    assert sorted(e["provider_event_id"] for e in events) == sorted(r.provider_event_id
                                                                    for r in rows)


async def test_stripe_created_out_of_range_and_nul_id_are_4xx(client, make_tenant):
    """Stripe's parser reads ``created`` as a Unix timestamp and the id as sent."""
    import hashlib
    import hmac

    tenant = await make_tenant("whstripe")
    response = await client.put("/v1/providers/stripe", headers=tenant.headers, json={
        "secret_key": "sk_test_bad_events", "public_key": "pk_test_bad_events",
        "webhook_secret": "whsec_bad_events"})
    assert response.status_code == 200, response.text
    url = f"/webhooks/{tenant.slug}/stripe"

    def stripe_event(event_id: str, created: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"id": event_id, "object": "event", "type": "customer.created",
                           "created": created, "data": {"object": {"id": "cus_1"}}}).encode()
        stamp = int(time.time())
        mac = hmac.new(b"whsec_bad_events", f"{stamp}.".encode() + body,
                       hashlib.sha256).hexdigest()
        return body, {"Stripe-Signature": f"t={stamp},v1={mac}",
                      "Content-Type": "application/json"}

    sent = [stripe_event("evt_far", 10**20), stripe_event("evt_before", -(10**20)),
            stripe_event("evt_\u0000nul", int(time.time())),
            *[stripe_event(f"evt_ok_{n}", int(time.time())) for n in range(10)]]
    answers = await asyncio.gather(*[client.post(url, content=b, headers=h) for b, h in sent])
    for answer in answers[:3]:
        assert_error(answer, 400, "malformed_webhook")
    assert all(a.status_code == 200 for a in answers[3:]), [a.text for a in answers[3:]]
    events = await inbox(client, tenant)
    assert sorted(e["provider_event_id"] for e in events) == sorted(
        f"evt_ok_{n}" for n in range(10))
