"""StripeProvider against a real localstripe on loopback (everything localstripe supports).

The test plays the browser with the SDK: it attaches a test card to the PaymentIntent and
confirms it, as Stripe.js would with the ``client_secret``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stripe
from aiohttp import web

from core.embedded import free_port
from providers.base import (
    BadCredentials,
    CreatePayment,
    EventType,
    InvalidProviderRequest,
    PaymentDeclined,
    PaymentState,
    ProviderConfig,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    StaleWebhook,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.stripe import StripeProvider, close_http_client, map_stripe_error

#: The SDK's HTTPXClient posts form bodies with ``data=`` bytes, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

SECRET_KEY = "sk_test_paymesh_localstripe"
WEBHOOK_SECRET = "whsec_paymesh_localstripe"


def make_provider(url: str, **overrides: str) -> StripeProvider:
    config = ProviderConfig(
        tenant="acme",
        code="stripe",
        api_base_url=url,
        secret_key=overrides.get("secret_key", SECRET_KEY),
        public_key="pk_test_paymesh",
        webhook_secret=overrides.get("webhook_secret", WEBHOOK_SECRET),
    )
    return StripeProvider(config)


@pytest.fixture
def provider(localstripe_url: str) -> StripeProvider:
    return make_provider(localstripe_url)


@pytest.fixture
async def browser(localstripe_url: str) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.HTTPXClient()
    yield stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe_url}, http_client=http)
    await http.close_async()
    await close_http_client()


def checkout(amount: int = 2000, currency: str = "EUR", **extra: object) -> CreatePayment:
    order = uuid.uuid4().hex
    return CreatePayment(
        order_id=order,
        order_number=f"INV-{order[:6]}",
        amount=amount,
        currency=currency,
        idempotency_key=f"checkout:{order}",
        description="Annual check-up",
        **extra,  # type: ignore[arg-type]
    )


async def pay(browser: stripe.StripeClient, payment_id: str, card: str) -> None:
    """What Stripe.js does: attach the card, confirm."""
    await browser.v1.payment_intents.update_async(payment_id, {"payment_method": card})
    await browser.v1.payment_intents.confirm_async(payment_id)


async def test_create_confirm_fetch_succeeded(
    provider: StripeProvider, browser: stripe.StripeClient
) -> None:
    request = checkout(amount=4250, currency="EUR", metadata={"campaign": "spring"})
    created = await provider.create_payment(request)
    assert created.state is PaymentState.PENDING
    assert created.provider_payment_id.startswith("pi_")
    assert created.client_secret and created.client_secret.startswith(created.provider_payment_id)

    pi = await browser.v1.payment_intents.retrieve_async(created.provider_payment_id)
    metadata = pi.to_dict()["metadata"]
    assert metadata["order_id"] == request.order_id and metadata["tenant"] == "acme"
    assert metadata["order_number"] == request.order_number and metadata["campaign"] == "spring"

    await pay(browser, created.provider_payment_id, "pm_card_visa")
    fetched = await provider.fetch_payment(created.provider_payment_id)
    assert fetched.state is PaymentState.SUCCEEDED
    assert (fetched.amount, fetched.currency) == (4250, "EUR")
    assert provider.public_config() == {"publishable_key": "pk_test_paymesh"}


async def test_declined_card(provider: StripeProvider, browser: stripe.StripeClient) -> None:
    created = await provider.create_payment(checkout())
    with pytest.raises(stripe.CardError) as declined:
        await pay(browser, created.provider_payment_id, "pm_card_chargeCustomerFail")
    mapped = map_stripe_error(declined.value)
    assert isinstance(mapped, PaymentDeclined) and mapped.code == "card_declined"

    fetched = await provider.fetch_payment(created.provider_payment_id)
    assert fetched.state is PaymentState.FAILED
    assert fetched.failure_code == "card_declined"
    with pytest.raises(InvalidProviderRequest, match="succeeded payment"):
        await provider.refund(
            RefundRequest(
                provider_payment_id=created.provider_payment_id,
                amount=1,
                currency="EUR",
                idempotency_key="r",
            )
        )


async def test_partial_and_full_refunds(
    provider: StripeProvider, browser: stripe.StripeClient
) -> None:
    created = await provider.create_payment(checkout(amount=1000, currency="USD"))
    await pay(browser, created.provider_payment_id, "pm_card_visa")

    def refund(amount: int, key: str) -> RefundRequest:
        return RefundRequest(
            provider_payment_id=created.provider_payment_id,
            amount=amount,
            currency="USD",
            idempotency_key=key,
            reason="customer changed their mind",
        )

    first = await provider.refund(refund(300, "refund-1"))
    assert first.state is RefundState.SUCCEEDED and (first.amount, first.currency) == (300, "USD")
    # A retry with the same key returns the same refund (localstripe ignores Idempotency-Key).
    assert (
        await provider.refund(refund(300, "refund-1"))
    ).provider_refund_id == first.provider_refund_id
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await provider.refund(refund(701, "refund-2"))
    rest = await provider.refund(refund(700, "refund-3"))
    assert rest.amount == 700 and rest.provider_refund_id != first.provider_refund_id
    with pytest.raises(InvalidProviderRequest, match="exceeds"):
        await provider.refund(refund(1, "refund-4"))

    full = await provider.create_payment(checkout(amount=5000, currency="JPY"))
    await pay(browser, full.provider_payment_id, "pm_card_visa")
    whole = await provider.refund(
        RefundRequest(
            provider_payment_id=full.provider_payment_id,
            amount=5000,
            currency="JPY",
            idempotency_key="full",
        )
    )
    assert whole.state is RefundState.SUCCEEDED and (whole.amount, whole.currency) == (5000, "JPY")


@pytest.fixture
async def receiver(
    localstripe_url: str,
) -> AsyncIterator[asyncio.Queue[tuple[dict[str, str], bytes]]]:
    """A loopback HTTP endpoint registered as localstripe's webhook target."""
    inbox: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        inbox.put_nowait(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{localstripe_url}/_config/webhooks/paymesh-tests",
            data={
                "url": f"http://127.0.0.1:{port}/hook",
                "secret": WEBHOOK_SECRET,
                "events[]": ["payment_intent.succeeded", "payment_intent.payment_failed"],
            },
        )
        response.raise_for_status()
    try:
        yield inbox
    finally:
        await runner.cleanup()


async def test_webhook_from_localstripe_is_verified_and_parsed(
    provider: StripeProvider,
    browser: stripe.StripeClient,
    receiver: asyncio.Queue[tuple[dict[str, str], bytes]],
) -> None:
    request = checkout(amount=1999, currency="USD")
    created = await provider.create_payment(request)
    await pay(browser, created.provider_payment_id, "pm_card_visa")

    deadline = time.monotonic() + 10
    while True:  # earlier tests' events may still arrive; wait for ours
        headers, body = await asyncio.wait_for(
            receiver.get(), max(deadline - time.monotonic(), 0.1)
        )
        if created.provider_payment_id.encode() in body:
            break
    webhook = WebhookRequest(headers=headers, body=body)
    provider.verify_webhook(webhook)
    event = provider.parse_webhook(webhook)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert event.provider_payment_id == created.provider_payment_id
    assert (event.amount, event.currency, event.reference) == (1999, "USD", request.order_id)
    assert event.provider_event_id.startswith("evt_")

    stamp = int(headers["stripe-signature"].split("t=")[1].split(",")[0])
    signed_at = datetime.fromtimestamp(stamp, UTC)
    with pytest.raises(StaleWebhook):
        provider.verify_webhook(webhook, now=signed_at + timedelta(seconds=301))
    forged = WebhookRequest(headers=headers, body=body.replace(b"1999", b"1"))
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(forged)
    with pytest.raises(WebhookVerificationError):
        make_provider("http://unused", webhook_secret="whsec_other").verify_webhook(webhook)


async def test_connect_fields_are_sent_only_when_set(provider: StripeProvider) -> None:
    # localstripe has no Connect and rejects unknown fields: a plain create succeeds above,
    # and one with an application fee reaches Stripe (and is refused by the fake).
    with pytest.raises(InvalidProviderRequest, match="application_fee_amount"):
        await provider.create_payment(
            checkout(application_fee_amount=150, destination_account="acct_1")
        )


async def test_credentials_and_outages(localstripe_url: str) -> None:
    assert (await make_provider(localstripe_url).test_credentials()).ok
    bad = make_provider(localstripe_url, secret_key="nope")
    check = await bad.test_credentials()
    assert not check.ok and "bad_credentials" in check.message
    with pytest.raises(BadCredentials):
        await bad.create_payment(checkout())
    down = make_provider(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable):
        await down.fetch_payment("pi_missing")
    with pytest.raises(InvalidProviderRequest):
        await make_provider(localstripe_url).fetch_payment("pi_doesnotexist")
