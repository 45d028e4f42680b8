"""Public routes are protected (issue 11, section 6), through HTTP.

- ``X-Forwarded-For`` is believed only from ``PAYMESH_TRUSTED_PROXIES``; one client
  address everywhere (rate limits, audit rows).
- Rate limits with ``Retry-After`` and the error object: webhooks per tenant and provider
  (the fast lane), failed API keys per client, the sandbox's hosted pages.
- Every HTML page carries CSP (``frame-ancestors 'none'``), nosniff, Referrer-Policy, and
  HSTS when the public URL is https; the CSP allows exactly the pages' inline blocks.

Each test speaks from its own client address, so the limits it fills touch nobody else.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.test_orders_support import order

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def visitor(app: Any, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://t.local") as browser:
        yield browser


@contextmanager
def trusted(*proxies: str) -> Iterator[None]:
    from core.clientip import set_trusted_proxies, trusted_proxies

    saved = [str(n) for n in trusted_proxies()]
    set_trusted_proxies(proxies)
    try:
        yield
    finally:
        set_trusted_proxies(saved)


def fresh_ip() -> str:
    """A documentation-range address no other test (or earlier run) has counted."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def pay_path(made: dict[str, Any]) -> str:
    return "/pay/" + made["pay_url"].split("/pay/", 1)[1]


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited"), error
    assert set(error) >= {"type", "code", "message", "param"}


async def test_forwarded_for_is_believed_only_from_trusted_proxies(app, client, make_tenant):
    from tenant.pages.controllers import RATE_LIMIT

    tenant = await make_tenant()
    made = await order(client, tenant)
    # not a trusted proxy: a new X-Forwarded-For per request changes nothing
    async with visitor(app, "198.51.100.7") as browser:
        statuses = [(await browser.get(pay_path(made), headers={
            "X-Forwarded-For": f"10.1.{n // 250}.{n % 250}"})).status_code
            for n in range(RATE_LIMIT[1] + 1)]
    assert statuses[:RATE_LIMIT[1]] == [200] * RATE_LIMIT[1] and statuses[-1] == 429

    with trusted("198.51.100.0/24"):
        async with visitor(app, "198.51.100.8") as proxy:
            # behind a trusted proxy each forwarded client has its own allowance …
            statuses = {(await proxy.get(pay_path(made), headers={
                "X-Forwarded-For": f"203.0.113.{n}"})).status_code for n in range(1, 80)}
            assert statuses == {200}
            # … and is the address the audit trail records: the right-most hop the
            # trusted proxy saw, not what the client wrote in front of it
            changed = await proxy.patch("/v1/settings", json={"tax_rate": "7"}, headers={
                **tenant.headers, "X-Forwarded-For": "6.6.6.6, 203.0.113.200"})
            assert changed.status_code == 200, changed.text
    trail = (await client.get("/v1/audit-log?limit=100", headers=tenant.headers)).json()["data"]
    [row] = [r for r in trail if r["action"].startswith("settings")][:1]
    assert row["ip"] == "203.0.113.200", row


async def test_failed_api_keys_are_limited_per_client_before_the_key_is_checked(
        app, client, make_tenant):
    from core.settings import get_settings

    limit = get_settings().auth_failure_limit
    tenant = await make_tenant()
    async with visitor(app, fresh_ip()) as guesser:
        for n in range(limit):
            bad = await guesser.get("/v1/orders", headers={"Authorization": f"Bearer pm_x{n}"})
            assert bad.status_code == 401, bad.text
        assert_rate_limited(await guesser.get("/v1/orders",
                                              headers={"Authorization": "Bearer pm_nope"}))
        # refused before the check: even the right key waits out the window here
        assert_rate_limited(await guesser.get("/v1/orders", headers=tenant.headers))
    async with visitor(app, fresh_ip()) as neighbour:
        assert (await neighbour.get("/v1/orders", headers=tenant.headers)).status_code == 200


async def test_webhooks_are_limited_per_tenant_and_provider_in_the_fast_lane(
        app, client, make_tenant):
    runtime = app.state.runtime
    saved = runtime.settings
    runtime.settings = dataclasses.replace(saved, webhook_rate_limit=3)
    try:
        tenant = await make_tenant()
        url = f"/webhooks/{tenant.slug}/sandbox"
        body = b'{"id": "evt_1"}'  # unsigned: refused after it is counted
        statuses = [(await client.post(url, content=body)).status_code for _ in range(3)]
        assert statuses == [400] * 3 or statuses == [404] * 3, statuses
        assert_rate_limited(await client.post(url, content=body))
        # the lane answered (Content-Length present); without it Litestar's route runs
        # the same limit
        async def chunks() -> AsyncIterator[bytes]:
            yield body

        assert_rate_limited(await client.post(url, content=chunks()))
        # another provider of the same tenant, and another tenant, are not affected
        other = await client.post(f"/webhooks/{tenant.slug}/paystack", content=body)
        assert other.status_code != 429, other.text
        second = await make_tenant()
        assert (await client.post(f"/webhooks/{second.slug}/sandbox",
                                  content=body)).status_code != 429
    finally:
        runtime.settings = saved


async def test_sandbox_pages_are_rate_limited(app):
    from providers.sandbox.gateway import PAGE_RATE_LIMIT

    allowed = PAGE_RATE_LIMIT.rate_limit[1]
    async with visitor(app, fresh_ip()) as browser:
        statuses = [(await browser.get(f"/sandbox/checkout/pay_nope{n}")).status_code
                    for n in range(allowed)]
        assert statuses == [404] * allowed
        assert_rate_limited(await browser.get("/sandbox/checkout/pay_nope"))


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_secured(response: httpx.Response, *, https: bool = False) -> dict[str, list[str]]:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]
    assert ("strict-transport-security" in response.headers) is https
    csp = _directives(response)
    assert csp["frame-ancestors"] == ["'none'"], csp
    html = response.text
    for css in re.findall(r"<style>(.*?)</style>", html, re.S):
        assert _sha256(css) in csp["style-src"] or "'unsafe-inline'" in csp["style-src"], csp
    for attributes, script in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S):
        source = re.search(r"src=[\"']([^\"']+)", attributes)
        if source:
            url = source.group(1)
            allowed = csp.get("script-src", csp.get("default-src", []))
            assert ("'self'" in allowed and not url.startswith("http")) or any(
                url.startswith(origin) for origin in allowed if origin.startswith("http")), csp
        elif script.strip():
            assert _sha256(script) in csp["script-src"], csp
    assert "'unsafe-inline'" not in csp.get("script-src", [])
    return csp


async def test_every_html_page_sends_the_security_headers(app, client, make_tenant):
    tenant = await make_tenant()
    made = await order(client, tenant)
    async with visitor(app, "192.0.2.120") as browser:
        page = await browser.get(pay_path(made))
        assert page.status_code == 200
        csp = assert_secured(page)
        assert csp["default-src"] == ["'none'"] and "script-src" not in csp
        assert re.search(r"<style>", page.text)
        assert_secured(await browser.get(f"/pay/{tenant.slug}/{'x' * 20}"))  # friendly 404
        assert_secured(await browser.get(f"/pay/no-such-{uuid.uuid4().hex[:6]}/{'x' * 20}"))
        hosted = await browser.get("/sandbox/checkout/pay_nope")
        assert hosted.status_code == 404 and "<style>" in hosted.text
        assert_secured(hosted)
        for docs in ("/schema", "/schema/swagger"):
            rendered = await browser.get(docs)
            assert rendered.status_code == 200, (docs, rendered.text[:200])
            assert_secured(rendered)
        # JSON is not a page: no CSP needed, no body held back
        assert "content-security-policy" not in (await browser.get("/healthz")).headers


async def test_https_public_url_adds_strict_transport_security(platform):
    from app import create_app
    from core.settings import get_settings

    secured = create_app(dataclasses.replace(get_settings(),
                                             public_url="https://pay.example.com"))
    try:
        async with visitor(secured, "192.0.2.121") as browser:
            missing = await browser.get(f"/pay/no-such-{uuid.uuid4().hex[:6]}/{'x' * 20}")
            assert_secured(missing, https=True)
            assert "max-age=" in missing.headers["strict-transport-security"]
    finally:
        await secured.state.runtime.close()


async def test_paymesh_run_ignores_forwarded_for_from_untrusted_peers(live_api, make_tenant):
    """Through the real server (``paymesh run``): a new X-Forwarded-For per request does
    not buy a new allowance; uvicorn's own proxy-header handling is off."""
    from tenant.pages.controllers import RATE_LIMIT

    tenant = await make_tenant()
    path = f"/pay/{tenant.slug}/{'z' * 24}"  # an unknown link: a friendly 404, still counted
    async with httpx.AsyncClient(base_url=live_api, timeout=30) as browser:
        statuses = [(await browser.get(path, headers={
            "X-Forwarded-For": f"10.2.{n // 250}.{n % 250}"})).status_code
            for n in range(RATE_LIMIT[1] + 1)]
    assert statuses[:RATE_LIMIT[1]] == [404] * RATE_LIMIT[1], statuses
    assert statuses[-1] == 429
