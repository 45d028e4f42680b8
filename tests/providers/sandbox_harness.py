"""A sandbox gateway in a Litestar app over the real Redis, plus a provider and a browser.

The provider reaches the gateway through ``httpx.ASGITransport``; the "browser" is
Litestar's ``AsyncTestClient``; webhooks are delivered as the worker would, to a
capturing transport.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from core.settings import reset_settings
from providers.base import (
    CreatePayment,
    PaymentState,
    ProviderConfig,
    WebhookRequest,
)
from providers.sandbox import (
    SandboxProvider,
    create_gateway_router,
    deliver_webhook,
    store,
)

PUBLIC = "http://paymesh.test"
RETURN_URL = "https://shop.example/return?x=1"
SUCCESS, DECLINED, NO_FUNDS = "4242424242424242", "4000000000000002", "4000000000009995"


@dataclass
class Sandbox:
    app: Litestar
    provider: SandboxProvider
    browser: AsyncTestClient[Litestar]
    dispatched: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.provider.config.secret_key or ""

    async def create(self, amount: int = 1000, currency: str = "USD", **extra: object) -> str:
        order = uuid.uuid4().hex
        request = CreatePayment(
            order_id=order,
            order_number=f"INV-{order[:6]}",
            amount=amount,
            currency=currency,
            idempotency_key=f"checkout:{order}",
            customer_email="pat@example.com",
            description="Consultation",
            return_url=RETURN_URL,
            **extra,  # type: ignore[arg-type]
        )
        result = await self.provider.create_payment(request)
        assert result.state is PaymentState.PENDING
        return result.provider_payment_id

    async def pay(self, payment_id: str, card: str) -> httpx.Response:
        return await self.browser.post(
            f"/sandbox/checkout/{payment_id}", data={"card_number": card}, follow_redirects=False
        )

    async def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return await self.browser.request(
            method, f"/sandbox/api/v1{path}", headers=headers, **kwargs
        )  # type: ignore[arg-type]

    async def deliver(self, delivery_id: str) -> httpx.Request:
        """Deliver like the worker would, to a capturing transport; return what was sent."""
        sent: list[httpx.Request] = []

        def capture(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200, json={"received": True})

        async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
            await deliver_webhook(delivery_id, http)
        assert len(sent) == 1
        return sent[0]

    def as_webhook(self, request: httpx.Request) -> WebhookRequest:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return WebhookRequest(headers=headers, body=request.content)


class RedisPerEventLoop:
    """Give the gateway one Redis client per event loop.

    Litestar's ``AsyncTestClient`` runs the app in a portal thread with its own loop, while
    the provider (``ASGITransport``) and ``deliver_webhook`` run in the test's loop; a
    redis-py asyncio client must not cross loops, and ``core.redis.get_redis`` caches one
    client per URL per process.
    """

    def __init__(self, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = redis_url
        self.clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        monkeypatch.setenv("PAYMESH_REDIS_URL", redis_url)
        monkeypatch.setattr(store, "get_redis", self.get_redis)
        reset_settings()

    def get_redis(self, url: str | None = None) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        if loop not in self.clients:
            self.clients[loop] = aioredis.Redis.from_url(url or self.url)
        return self.clients[loop]

    async def close(self, browser: AsyncTestClient[Litestar]) -> None:
        """Close each client in its own loop (the browser's portal loop is still running)."""
        here = asyncio.get_running_loop()
        for loop, client in self.clients.items():
            if loop is here:
                await client.aclose()
            else:
                browser.blocking_portal.call(client.aclose)
        self.clients.clear()


@pytest.fixture
async def sandbox(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    redis = RedisPerEventLoop(redis_url, monkeypatch)
    monkeypatch.setenv("PAYMESH_PUBLIC_URL", PUBLIC)
    reset_settings()
    dispatched: list[str] = []
    app = Litestar(route_handlers=[create_gateway_router(dispatched.append)])
    config = ProviderConfig(
        tenant="acme",
        code="sandbox",
        secret_key=f"sk_sandbox_{uuid.uuid4().hex}",
        public_base_url=PUBLIC,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with AsyncTestClient(app, base_url=PUBLIC) as browser:
        yield Sandbox(app, SandboxProvider(config, http), browser, dispatched)
        await redis.close(browser)
    await http.aclose()
    monkeypatch.undo()
    reset_settings()


def result_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://shop.example/return"
    return parse_qs(location.query)
