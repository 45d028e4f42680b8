"""Sandbox refunds, simulated disputes, signed webhook delivery and API errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from core.settings import reset_settings
from providers.base import (
    CreatePayment,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    ProviderConfig,
    RefundRequest,
    RefundState,
    StaleWebhook,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.sandbox import (
    SandboxProvider,
    UnknownDelivery,
    WebhookDeliveryFailed,
    create_gateway_router,
    deliver_webhook,
    pending_deliveries,
    webhook_secret_for,
)
from tests.providers.sandbox_harness import (
    PUBLIC,
    SUCCESS,
    RedisPerEventLoop,
    Sandbox,
)


async def test_refunds_are_idempotent_and_never_exceed_the_captured_amount(
    sandbox: Sandbox,
) -> None:
    payment_id = await sandbox.create(amount=1000)

    def refund(amount: int, key: str) -> RefundRequest:
        return RefundRequest(
            provider_payment_id=payment_id, amount=amount, currency="USD", idempotency_key=key
        )

    with pytest.raises(InvalidProviderRequest, match="succeeded payment"):
        await sandbox.provider.refund(refund(100, "early"))
    await sandbox.pay(payment_id, SUCCESS)
    sandbox.dispatched.clear()

    with pytest.raises(InvalidProviderRequest, match="USD"):
        await sandbox.provider.refund(
            RefundRequest(
                provider_payment_id=payment_id, amount=1, currency="EUR", idempotency_key="eur"
            )
        )
    first = await sandbox.provider.refund(refund(400, "r1"))
    # answered pending: the signed refund.succeeded webhook (below) completes it
    assert first.state is RefundState.PENDING and first.amount == 400
    assert (
        await sandbox.provider.refund(refund(400, "r1"))
    ).provider_refund_id == first.provider_refund_id
    assert len(sandbox.dispatched) == 1  # the replay queued nothing new
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await sandbox.provider.refund(refund(700, "r2"))
    await sandbox.provider.refund(refund(600, "r3"))
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await sandbox.provider.refund(refund(1, "r4"))

    webhook = sandbox.as_webhook(await sandbox.deliver(sandbox.dispatched[0]))
    sandbox.provider.verify_webhook(webhook)
    event = sandbox.provider.parse_webhook(webhook)
    assert event.type is EventType.REFUND_SUCCEEDED
    assert (event.provider_refund_id, event.provider_payment_id) == (
        first.provider_refund_id,
        payment_id,
    )
    assert event.amount == 400


async def test_dispute_simulation_opens_and_closes_with_webhooks(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create(amount=5000, currency="GBP")
    await sandbox.pay(payment_id, SUCCESS)
    await sandbox.provider.refund(
        RefundRequest(
            provider_payment_id=payment_id, amount=1000, currency="GBP", idempotency_key="r"
        )
    )
    sandbox.dispatched.clear()

    assert (
        await sandbox.api("POST", f"/payments/{payment_id}/dispute", json={"outcome": "won"})
    ).status_code == 409
    opened = await sandbox.api("POST", f"/payments/{payment_id}/dispute", json={})
    assert opened.status_code == 200 and opened.json()["dispute"]["status"] == "needs_response"
    assert (await sandbox.api("POST", f"/payments/{payment_id}/dispute")).status_code == 409
    with pytest.raises(InvalidProviderRequest, match="dispute"):
        await sandbox.provider.refund(
            RefundRequest(
                provider_payment_id=payment_id, amount=10, currency="GBP", idempotency_key="r2"
            )
        )
    closed = await sandbox.api("POST", f"/payments/{payment_id}/dispute", json={"outcome": "lost"})
    assert closed.json()["dispute"]["status"] == "lost"

    events = []
    for delivery_id in sandbox.dispatched:
        webhook = sandbox.as_webhook(await sandbox.deliver(delivery_id))
        sandbox.provider.verify_webhook(webhook)
        events.append(sandbox.provider.parse_webhook(webhook))
    assert [e.type for e in events] == [EventType.DISPUTE_OPENED, EventType.DISPUTE_CLOSED]
    assert events[0].provider_dispute_id == events[1].provider_dispute_id
    assert events[0].amount == 4000 and events[1].data["outcome"] == "lost"
    # The lost dispute took back what was left: nothing remains to refund.
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await sandbox.provider.refund(
            RefundRequest(
                provider_payment_id=payment_id, amount=1, currency="GBP", idempotency_key="r3"
            )
        )


async def test_webhook_signature_checks(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create()
    await sandbox.pay(payment_id, SUCCESS)
    sent = await sandbox.deliver(sandbox.dispatched[0])
    good = sandbox.as_webhook(sent)
    stamp = int(good.headers["sandbox-signature"].split(",")[0][2:])
    signed_at = datetime.fromtimestamp(stamp, UTC)

    sandbox.provider.verify_webhook(good, now=signed_at + timedelta(seconds=299))
    with pytest.raises(StaleWebhook):
        sandbox.provider.verify_webhook(good, now=signed_at + timedelta(seconds=301))
    forged = WebhookRequest(headers=good.headers, body=good.body.replace(b"1000", b"9000"))
    with pytest.raises(WebhookVerificationError) as forged_error:
        sandbox.provider.verify_webhook(forged)
    assert type(forged_error.value) is WebhookVerificationError
    with pytest.raises(MalformedWebhook):
        sandbox.provider.verify_webhook(
            WebhookRequest(headers={"sandbox-signature": "garbage"}, body=good.body)
        )
    with pytest.raises(WebhookVerificationError):
        sandbox.provider.verify_webhook(WebhookRequest(headers={}, body=good.body))
    other_tenant = SandboxProvider(
        ProviderConfig(tenant="acme", code="sandbox", secret_key="sk_sandbox_someoneelse"),
        sandbox.provider.http,
    )
    with pytest.raises(WebhookVerificationError):
        other_tenant.verify_webhook(good)
    # An explicitly configured secret is used instead of the derived one.
    explicit = SandboxProvider(
        ProviderConfig(
            tenant="acme",
            code="sandbox",
            secret_key="sk_sandbox_someoneelse",
            webhook_secret=webhook_secret_for(sandbox.key),
        ),
        sandbox.provider.http,
    )
    explicit.verify_webhook(good)
    assert (
        webhook_secret_for(sandbox.key).startswith("whsec_")
        and len(webhook_secret_for(sandbox.key)) == 46
    )


async def test_failed_delivery_raises_and_stays_pending(sandbox: Sandbox) -> None:
    payment_id = await sandbox.create()
    await sandbox.pay(payment_id, SUCCESS)
    delivery_id = sandbox.dispatched[0]

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(500))
    ) as http:
        with pytest.raises(WebhookDeliveryFailed):
            await deliver_webhook(delivery_id, http)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as http:
        with pytest.raises(WebhookDeliveryFailed):
            await deliver_webhook(delivery_id, http)
    assert delivery_id in await pending_deliveries(older_than_seconds=-5)

    await sandbox.deliver(delivery_id)
    assert delivery_id not in await pending_deliveries(older_than_seconds=-5)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(500))
    ) as http:
        await deliver_webhook(delivery_id, http)  # already delivered: nothing is sent
    with pytest.raises(UnknownDelivery):
        await deliver_webhook("whd_missing", http)


async def test_async_dispatch_and_failing_dispatch(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = RedisPerEventLoop(redis_url, monkeypatch)
    seen: list[str] = []

    async def async_dispatch(delivery_id: str) -> None:
        seen.append(delivery_id)

    def broken_dispatch(delivery_id: str) -> None:
        raise RuntimeError("broker down")

    for dispatch in (async_dispatch, broken_dispatch):
        app = Litestar(route_handlers=[create_gateway_router(dispatch)])
        config = ProviderConfig(
            tenant="t", code="sandbox", secret_key=f"sk_sandbox_{uuid.uuid4().hex}"
        )
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
            AsyncTestClient(app) as browser,
        ):
            provider = SandboxProvider(config, http)
            result = await provider.create_payment(
                CreatePayment(
                    order_id="o", order_number="n", amount=100, currency="USD", idempotency_key="k"
                )
            )
            page = await browser.post(
                f"/sandbox/checkout/{result.provider_payment_id}", data={"card_number": SUCCESS}
            )
            assert page.status_code == 200 and "has been paid" in page.text  # no return URL
            await redis.close(browser)
    assert len(seen) == 1
    reset_settings()


async def test_credentials_and_api_errors(sandbox: Sandbox) -> None:
    assert (await sandbox.provider.test_credentials()).ok
    bad = SandboxProvider(
        ProviderConfig(
            tenant="a", code="sandbox", secret_key="sk_live_nope", public_base_url=PUBLIC
        ),
        sandbox.provider.http,
    )
    check = await bad.test_credentials()
    assert not check.ok and "bad_credentials" in check.message
    unauthorized = await sandbox.browser.get(
        "/sandbox/api/v1/account", headers={"Authorization": "Bearer x"}
    )
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "invalid_api_key"
    invalid = await sandbox.api("POST", "/payments", json={"amount": -5, "currency": "USD"})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "amount"
    garbage = await sandbox.api("POST", "/payments", content=b"{nope")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
    bad_currency = await sandbox.api("POST", "/payments", json={"amount": 5, "currency": "ZZZ"})
    assert bad_currency.json()["error"]["code"] == "invalid_currency"

    # Another account's payment is invisible.
    payment_id = await sandbox.create()
    stranger = await sandbox.browser.get(
        f"/sandbox/api/v1/payments/{payment_id}",
        headers={"Authorization": "Bearer sk_sandbox_stranger1"},
    )
    assert stranger.status_code == 404
    with pytest.raises(InvalidProviderRequest) as missing:
        await sandbox.provider.fetch_payment("pay_missing")
    assert missing.value.code == "payment_not_found"


async def test_uses_configured_api_base_url(sandbox: Sandbox) -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"id": "acct_x", "object": "account"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as http:
        config = ProviderConfig(
            tenant="a",
            code="sandbox",
            secret_key="sk_sandbox_abcdefgh",
            api_base_url="https://gateway.example/api/v1/",
        )
        assert (await SandboxProvider(config, http).test_credentials()).ok
    assert seen == ["https://gateway.example/api/v1/account"]
