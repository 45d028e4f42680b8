"""Plumbing of the outgoing delivery bench row: its registration and its loopback
receiver, fed requests signed by Paymesh's own delivery code (no platform servers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from bench import registry
from bench.receiver import Receiver
from tenant.outgoing import secrets
from tenant.outgoing.delivery import event_body, signature_header


def test_outgoing_delivery_runs_after_the_row_it_is_compared_with():
    names = [r.name for r in registry.resolve(None)]
    assert names.index("outgoing_delivery") == names.index("worker_processing") + 1
    assert registry.ROWS["outgoing_delivery"].needs == ("worker_processing",)
    assert [r.name for r in registry.resolve(["outgoing_delivery"])] == [
        "references", "worker_processing", "outgoing_delivery"]


def _delivery(secret: str, event_id: uuid.UUID, *, tamper: bool = False
              ) -> tuple[dict[str, str], bytes]:
    body = event_body(event_id, "order.paid", datetime(2026, 1, 1, tzinfo=UTC), {"id": "o1"})
    ts = int(datetime.now(UTC).timestamp())
    headers = {"content-type": "application/json", "webhook-id": str(event_id),
               "webhook-timestamp": str(ts),
               "webhook-signature": signature_header([secret], str(event_id), ts, body)}
    return headers, (body.replace(b"o1", b"o2") if tamper else body)


async def _exercise() -> tuple[Receiver, dict[str, str], int]:
    receiver = await Receiver().start()
    keys = {"e0": secrets.new_secret(), "e1": secrets.new_secret()}
    ids = [uuid.uuid4() for _ in range(5)]
    try:
        async with httpx.AsyncClient() as client:
            for endpoint, secret in keys.items():
                for event_id in ids:
                    headers, body = _delivery(secret, event_id)
                    resp = await client.post(receiver.url(endpoint), content=body,
                                             headers=headers)
                    assert resp.status_code == 200 and resp.content == b""
            resp = await client.post(f"{receiver.base_url}/capacity", content=b"{}")
            assert resp.status_code == 200
        connections = receiver.connections
    finally:
        await receiver.close()
    return receiver, keys, connections


def test_receiver_answers_keeps_and_verifies_standard_webhooks():
    receiver, keys, connections = asyncio.run(_exercise())
    assert connections == 1  # keep-alive: one connection for all eleven requests
    assert receiver.capacity_hits == 1 and receiver.malformed == 0
    assert receiver.per_endpoint() == {"e0": 5, "e1": 5}
    verdict = receiver.verify(keys)
    assert verdict.ok and verdict.verified == 10 and len(verdict.pairs) == 10


def test_receiver_verdict_catches_bad_signatures_duplicates_and_strangers():
    receiver, keys, _ = asyncio.run(_exercise())
    # the same deliveries checked against swapped secrets: every signature is wrong
    swapped = receiver.verify({"e0": keys["e1"], "e1": keys["e0"]})
    assert not swapped.ok and len(swapped.bad_signatures) == 10 and swapped.verified == 0
    # a repeated (endpoint, webhook-id), a tampered body, an endpoint nobody registered
    first = receiver.received[0]
    receiver.record(f"/hooks/{first.endpoint}".encode(), first.headers, first.body)
    headers, body = _delivery(keys["e1"], uuid.uuid4(), tamper=True)
    receiver.record(b"/hooks/e1", headers, body)
    receiver.record(b"/hooks/e9", headers, body)
    verdict = receiver.verify(keys)
    assert not verdict.ok
    assert verdict.duplicates == 1 and len(verdict.bad_signatures) == 1
    assert verdict.unknown_endpoints == 1 and verdict.verified == 11
