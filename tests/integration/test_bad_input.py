"""Bad input never yields a 5xx: every JSON route and every list answers a 4xx with the
error object, and stores nothing.

One world (a tenant with a product and an order, the seeded catalog) serves every case;
each case snapshots what its route could change (through the API, and the owner
database's tenant count) before and after the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from core.http import MAX_PAGE
from tests.workers.sandbox_events import SANDBOX_KEY, event_body, signed

pytestmark = pytest.mark.asyncio

INT64_MAX = 2**63 - 1
DEEP = 5000
DEEP_ARRAY = "[" * DEEP + "]" * DEEP
DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP
PAYSTACK_KEY = "sk_test_bad_input_paystack_0001"


@dataclass
class World:
    tenant: Any
    owner: dict[str, str]
    product_id: str
    order_id: str
    ids: dict[str, str] = field(default_factory=dict)


_world: list[World] = []


async def world(client, make_tenant, owner_headers) -> World:  # noqa: ANN001
    """Built once for the module (the tenant is only read by these tests)."""
    if _world:
        return _world[0]
    tenant = await make_tenant("bad")
    for code, keys in (("sandbox", {"secret_key": SANDBOX_KEY}),
                       ("paystack", {"secret_key": PAYSTACK_KEY, "public_key": "pk_test_x"})):
        response = await client.put(f"/v1/providers/{code}", json=keys, headers=tenant.headers)
        assert response.status_code == 200, response.text
    product = await client.post("/v1/products", headers=tenant.headers, json={
        "name": "Widget", "kind": "physical", "price": 1000, "currency": "USD", "stock": 5})
    assert product.status_code == 201, product.text
    order = await client.post("/v1/orders", headers=tenant.headers, json={
        "customer_email": "pat@example.com", "currency": "USD",
        "items": [{"product_id": product.json()["id"], "quantity": 1}]})
    assert order.status_code == 201, order.text
    _world.append(World(tenant, owner_headers, product.json()["id"], order.json()["id"]))
    return _world[0]


# ---------------------------------------------------------------------------- the routes


@dataclass(frozen=True)
class Route:
    """A JSON route: a valid body, its string and amount and integer fields, and the
    GETs that show everything it could change."""

    name: str
    method: str
    path: str  # {slug} {product} {order} are filled from the world
    owner: bool
    body: dict[str, Any]
    strings: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()

    def url(self, w: World) -> str:
        return self.path.format(slug=w.tenant.slug, product=w.product_id, order=w.order_id)

    def headers(self, w: World) -> dict[str, str]:
        return w.owner if self.owner else w.tenant.headers


TENANT_READS = ("/v1/audit-log?limit=100", "/v1/orders?limit=100", "/v1/products?limit=100",
                "/v1/payments?limit=100", "/v1/providers", "/v1/settings",
                "/v1/ledger/transactions?limit=100", "/v1/refunds?limit=100",
                "/v1/disputes?limit=100", "/v1/entitlements?limit=100")
OWNER_READS = ("/v1/owner/providers", "/v1/owner/clusters", "/v1/owner/tenants/{slug}")

ROUTES = [
    Route("product.create", "POST", "/v1/products", False,
          {"name": "Thing", "kind": "physical", "price": 100, "currency": "USD", "stock": 1},
          strings=("name", "description"), amounts=("price",), integers=("price", "stock")),
    Route("product.change", "PATCH", "/v1/products/{product}", False,
          {"name": "Renamed", "price": 200},
          strings=("name", "description"), amounts=("price",), integers=("price", "stock")),
    Route("order.create", "POST", "/v1/orders", False,
          {"customer_email": "pat@example.com", "currency": "USD",
           "items": [{"description": "Fee", "quantity": 1, "unit_amount": 500}]},
          strings=("customer_email", "coupon_code", "items.0.description", "metadata.note"),
          amounts=("items.0.unit_amount",),
          integers=("items.0.unit_amount", "items.0.quantity")),
    Route("order.transition", "POST", "/v1/orders/{order}/transition", False,
          {"to": "cancelled", "reason": "test"}, strings=("to", "reason")),
    Route("order.cancel", "POST", "/v1/orders/{order}/cancel", False,
          {"reason": "test"}, strings=("reason",)),
    Route("order.checkout", "POST", "/v1/orders/{order}/checkout", False,
          {"provider": "sandbox"}, strings=("provider", "return_url")),
    Route("order.mark_paid", "POST", "/v1/orders/{order}/mark-paid", False,
          {"amount": 1000, "reference": "cash"}, strings=("reference", "note"),
          amounts=("amount",), integers=("amount",)),
    Route("order.refund", "POST", "/v1/orders/{order}/refunds", False,
          {"amount": 100, "reason": "test"}, strings=("reason",), amounts=("amount",),
          integers=("amount",)),
    Route("settings.change", "PATCH", "/v1/settings", False,
          {"reservation_ttl_minutes": 30},
          integers=("reservation_ttl_minutes", "unpaid_auto_cancel_hours")),
    Route("provider_config.put", "PUT", "/v1/providers/sandbox", False,
          {"secret_key": SANDBOX_KEY, "priority": 5},
          strings=("secret_key", "public_key", "currencies.0"), integers=("priority",)),
    Route("owner.provider.create", "POST", "/v1/owner/providers", True,
          {"code": "badinput", "name": "Bad", "handler_key": "sandbox"},
          strings=("code", "name", "description", "logo_url", "handler_key"),
          integers=("priority",)),
    Route("owner.provider.change", "PATCH", "/v1/owner/providers/sandbox", True,
          {"description": "changed"},
          strings=("name", "description", "docs_url", "integration_type"),
          integers=("priority",)),
    Route("owner.provider.currency", "PUT", "/v1/owner/providers/sandbox/currencies/USD", True,
          {"fixed_fee": 30, "min_amount": 50},
          amounts=("fixed_fee", "min_amount", "max_amount"),
          integers=("fixed_fee", "min_amount", "max_amount")),
    Route("owner.tenant.create", "POST", "/v1/owner/tenants", True,
          {"slug": "bad-input-new", "name": "New", "default_currency": "USD"},
          strings=("slug", "name", "default_currency", "cluster")),
    Route("owner.tenant.change", "PATCH", "/v1/owner/tenants/{slug}", True,
          {"name": "Renamed"}, strings=("name",)),
    Route("owner.cluster.create", "POST", "/v1/owner/clusters", True,
          {"name": "bad-input", "url": "postgresql://127.0.0.1:1/postgres"},
          strings=("name", "url"), integers=("max_tenants",)),
]

LISTS = ["/v1/products", "/v1/orders", "/v1/payments", "/v1/audit-log",
         "/v1/ledger/transactions", "/v1/webhook-events", "/v1/owner/tenants",
         "/v1/refunds", "/v1/disputes", "/v1/entitlements"]


def with_value(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """``body`` (deep-copied) with ``value`` at ``items.0.unit_amount``-style paths."""
    copy = json.loads(json.dumps(body))
    *parents, last = dotted.split(".")
    node: Any = copy
    for part, following in zip(parents, [*parents[1:], last], strict=False):
        if part.isdigit():
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if following.isdigit() else {})
    if last.isdigit():
        while len(node) <= int(last):
            node.append(None)
        node[int(last)] = value
    else:
        node[last] = value
    return copy


def raw_with(body: dict[str, Any], dotted: str, raw: str) -> bytes:
    """``body`` as JSON text with the JSON text ``raw`` at ``dotted`` (exponents, depth)."""
    marker = "__RAW_MARKER__"
    return json.dumps(with_value(body, dotted, marker)).replace(f'"{marker}"', raw).encode()


async def snapshot(client, w: World, route: Route) -> dict[str, Any]:  # noqa: ANN001
    from core.runtime import get_runtime

    reads = OWNER_READS if route.owner else TENANT_READS
    seen: dict[str, Any] = {}
    for path in reads:
        url = path.format(slug=w.tenant.slug)
        response = await client.get(url, headers=route.headers(w))
        assert response.status_code == 200, (url, response.text)
        seen[url] = response.json()
    if not route.owner:
        order = await client.get(f"/v1/orders/{w.order_id}", headers=w.tenant.headers)
        seen["order"] = order.json()
    async with get_runtime().owner_session() as session:
        seen["tenants"] = await session.scalar(text("SELECT count(*) FROM tenants"))
    return seen


async def send(client, w: World, route: Route, content: bytes):  # noqa: ANN001, ANN201
    return await client.request(route.method, route.url(w), content=content,
                                headers={**route.headers(w), "Content-Type": "application/json"})


def assert_4xx(response, param: str | None = None) -> dict[str, Any]:  # noqa: ANN001
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) >= {"type", "code", "message", "param"}, error
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


async def refused_and_unchanged(client, w: World, route: Route,  # noqa: ANN001
                                bodies: list[bytes], param: str | None = None) -> None:
    before = await snapshot(client, w, route)
    for content in bodies:
        assert_4xx(await send(client, w, route, content), param)
    assert await snapshot(client, w, route) == before


def cases(attribute: str) -> list[Any]:
    return [pytest.param(r, f, id=f"{r.name}-{f}") for r in ROUTES for f in getattr(r, attribute)]


World_ = Callable[[], Awaitable[World]]


@pytest.fixture
def the_world(client, make_tenant, owner_headers) -> World_:  # noqa: ANN001
    return lambda: world(client, make_tenant, owner_headers)


# ---------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
async def test_deeply_nested_json_is_a_400(client, the_world, route: Route) -> None:
    w = await the_world()
    first = next(iter(route.body))
    await refused_and_unchanged(client, w, route, [
        DEEP_ARRAY.encode(), DEEP_OBJECT.encode(),
        raw_with(route.body, first, DEEP_ARRAY),
        raw_with(route.body, "metadata", DEEP_OBJECT),  # an untyped field, where allowed
        raw_with(route.body, "config", DEEP_ARRAY),
    ])


@pytest.mark.parametrize(("route", "name"), cases("strings"))
async def test_nul_in_a_string_is_a_400(client, the_world, route: Route, name: str) -> None:
    w = await the_world()
    body = json.dumps(with_value(route.body, name, "a\u0000b")).encode()
    assert b"\\u0000" in body
    await refused_and_unchanged(client, w, route, [body])


@pytest.mark.parametrize(("route", "name"), cases("strings"))
async def test_overlong_string_is_a_400(client, the_world, route: Route, name: str) -> None:
    w = await the_world()
    body = json.dumps(with_value(route.body, name, "x" * 10_000)).encode()
    await refused_and_unchanged(client, w, route, [body])


@pytest.mark.parametrize(("route", "name"), cases("amounts"))
async def test_amounts_are_json_integers_only(client, the_world, route: Route,
                                              name: str) -> None:
    w = await the_world()
    param = name.replace(".0.", "[0].")
    await refused_and_unchanged(client, w, route, [
        raw_with(route.body, name, "100.0"), raw_with(route.body, name, '"100"'),
        raw_with(route.body, name, "1e3"), raw_with(route.body, name, "1E2"),
    ], param=param)


@pytest.mark.parametrize(("route", "name"), cases("integers"))
async def test_integers_past_int64_are_a_400(client, the_world, route: Route,
                                             name: str) -> None:
    w = await the_world()
    await refused_and_unchanged(client, w, route, [
        raw_with(route.body, name, str(INT64_MAX + 1)),
        raw_with(route.body, name, str(10**30)),
        raw_with(route.body, name, str(-(2**63) - 1)),
    ])


async def test_valid_integers_and_optional_bodies_are_still_accepted(client,
                                                                       the_world) -> None:
    """The strict decoding refuses 1.0 and "100", not integers, nor a missing optional body."""
    w = await the_world()
    headers = w.tenant.headers
    created = await client.post("/v1/products", headers=headers, json={
        "name": "Strict", "kind": "service", "price": 1000, "currency": "USD"})
    assert created.status_code == 201, created.text
    changed = await client.patch(f"/v1/products/{created.json()['id']}", headers=headers,
                                 json={"price": 1200})
    assert changed.status_code == 200 and changed.json()["price"] == 1200, changed.text
    order = await client.post("/v1/orders", headers=headers, json={
        "customer_email": "pat@example.com", "currency": "USD",
        "items": [{"description": "Fee", "quantity": 2, "unit_amount": 250}]})
    assert order.status_code == 201 and order.json()["total"] == 500, order.text
    cancelled = await client.post(f"/v1/orders/{order.json()['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("query", [
    f"page={MAX_PAGE + 1}&limit=100", f"page={INT64_MAX}", f"page={INT64_MAX + 1}",
    f"page={10**30}", f"limit={INT64_MAX + 1}", f"page={INT64_MAX}&limit={INT64_MAX}",
    "page=0", "page=-1", f"page={-(2**63) - 1}", "page=1.5", "limit=abc",
])
async def test_lists_refuse_pages_past_int64(client, the_world, path: str, query: str) -> None:
    w = await the_world()
    headers = w.owner if path.startswith("/v1/owner") else w.tenant.headers
    assert_4xx(await client.get(f"{path}?{query}", headers=headers))


@pytest.mark.parametrize("path", LISTS)
async def test_lists_serve_the_last_page_empty(client, the_world, path: str) -> None:
    w = await the_world()
    headers = w.owner if path.startswith("/v1/owner") else w.tenant.headers
    response = await client.get(f"{path}?page={MAX_PAGE}&limit=100", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [] and response.json()["has_more"] is False


@pytest.mark.parametrize("url", [
    "/v1/products?kind=%00", "/v1/orders?customer_email=a%00b", "/v1/orders?status=%00",
    "/v1/webhook-events?provider=%00", "/v1/owner/tenants?status=%00",
    "/v1/owner/tenants/a%00b", "/v1/providers/for-currency/U%00D",
    "/v1/refunds?status=%00", "/v1/refunds?status=done", "/v1/refunds?order_id=nope",
    "/v1/disputes?status=closed", "/v1/disputes?order_id=1", "/v1/refunds/nope",
    "/v1/disputes/6f1c1c1e-0000-4000-8000-000000000000",  # fixed: xdist workers collect alike
])
async def test_nul_in_a_query_or_path_is_a_4xx(client, the_world, url: str) -> None:
    w = await the_world()
    headers = w.owner if url.startswith("/v1/owner") else w.tenant.headers
    assert_4xx(await client.get(url, headers=headers))


async def inbox(client, w: World) -> list[dict[str, Any]]:  # noqa: ANN001
    response = await client.get("/v1/webhook-events?limit=100", headers=w.tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_deeply_nested_webhooks_are_refused_and_not_stored(client, the_world) -> None:
    """Signed, so only the body's depth is wrong: the webhook door answers a 4xx too."""
    w = await the_world()
    before = await inbox(client, w)
    url = f"/webhooks/{w.tenant.slug}"
    for body in (DEEP_ARRAY.encode(), DEEP_OBJECT.encode(),
                 event_body("payment.succeeded", {"id": "p"}).replace(
                     b'"id": "p"', b'"id": ' + DEEP_ARRAY.encode())):
        assert_4xx(await client.post(f"{url}/sandbox", content=body, headers=signed(body)))
        signature = hmac.new(PAYSTACK_KEY.encode(), body, hashlib.sha512).hexdigest()
        assert_4xx(await client.post(f"{url}/paystack", content=body, headers={
            "x-paystack-signature": signature, "Content-Type": "application/json"}))
    assert await inbox(client, w) == before


async def test_data_errors_from_the_database_are_not_outages(client, the_world) -> None:
    """A value Postgres refuses (class 22) is the request's fault: a 400, never a 503."""
    w = await the_world()
    response = await client.get("/v1/orders?customer_email=%00", headers=w.tenant.headers)
    error = assert_4xx(response)
    assert response.status_code == 400 and error["code"] == "invalid_value", error


@pytest.mark.parametrize("path", ["/sandbox/api/v1/payments", "/sandbox/api/v1/refunds"])
async def test_the_sandbox_gateway_refuses_deep_json(client, path: str) -> None:
    """The provider double shipped in the app answers deep JSON with its own 400."""
    for body in (DEEP_ARRAY, DEEP_OBJECT, '{"metadata": ' + DEEP_ARRAY + "}"):
        response = await client.post(path, content=body.encode(), headers={
            "Authorization": f"Bearer {SANDBOX_KEY}", "Content-Type": "application/json"})
        assert response.status_code == 400, response.text


@pytest.mark.parametrize("value", ['"NaN"', '"sNaN"', '"Infinity"', '"-Infinity"', '"1e30"',
                                   '"abc"', "1e400"])
async def test_decimals_that_are_not_numbers_are_a_400(client, the_world, value: str) -> None:
    w = await the_world()
    routes = {r.name: r for r in ROUTES}
    currency = routes["owner.provider.currency"]
    await refused_and_unchanged(client, w, currency,
                                [raw_with(currency.body, "fee_percent", value)])
    settings = routes["settings.change"]
    await refused_and_unchanged(client, w, settings, [raw_with({}, "tax_rate", value)])
