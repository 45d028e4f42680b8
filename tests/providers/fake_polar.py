"""A stateful HTTP double of Polar's API (version 2026-10), built from polar-sdk's models.

No local Polar server exists, so this one speaks the SDK's own vocabulary: every request
body is loaded with the SDK's request ``TypedDict`` (and may carry no key the model does
not declare), every answer is built from the SDK's response dataclass (every field the
model declares, filled from its types, then the facts of this double) and is loaded back
with ``polar.deserialize`` before it leaves. A field the SDK would not send, or an answer
it could not read, fails the test that caused it.

It is a real aiohttp server on a loopback port, started on the test's event loop: the
provider reaches it through the catalog's API base (the SDK's ``base_url``), as it would
reach Polar. :meth:`FakePolar.pay` plays the customer paying a checkout and returns the
``order.paid`` payload Polar would send.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import types
import typing
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from polar import deserialize
from polar.v2026_10 import inputs, outputs
from polar.v2026_10.client import PolarAsync

from core.embedded import free_port

TOKEN = "polar_oat_paymesh_e2e_token"
API_VERSION = PolarAsync.version
NOW = "2026-01-01T00:00:00Z"


# ----------------------------------------------------------------------- model plumbing


def skeleton(model: Any) -> Any:
    """A JSON value of type ``model`` with every required field, from the SDK's types."""
    origin = typing.get_origin(model)
    if model is typing.Any:
        return None
    if origin is typing.Literal:
        return typing.get_args(model)[0]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(model)
        if type(None) in args:
            return None
        return skeleton(args[0])
    if origin is list:
        return []
    if origin is dict or model is dict:
        return {}
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        return {f.name: skeleton(hints[f.name]) for f in dataclasses.fields(model)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if isinstance(model, type) and issubclass(model, bool):
        return False
    if isinstance(model, type) and issubclass(model, int):
        return 0
    if isinstance(model, type) and issubclass(model, float):
        return 0.0
    if isinstance(model, type) and issubclass(model, str):
        return "x"
    alias = getattr(model, "__value__", None)  # a ``type X = ...`` alias
    if alias is not None:
        return skeleton(alias)
    raise TypeError(f"no skeleton for {model!r}")


def answer(model: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """The model's skeleton with ``facts``; refuses a fact the model does not declare and
    proves the SDK loads the result."""
    declared = {f.name for f in dataclasses.fields(model)}
    unknown = set(facts) - declared
    assert not unknown, f"{model.__name__} has no field {sorted(unknown)}"
    body = {**skeleton(model), **facts}
    deserialize(body, model)
    return body


def request_of(model: Any, body: Any) -> dict[str, Any]:
    """A request body as the SDK's ``TypedDict`` ``model`` declares it (no extra key)."""
    assert isinstance(body, dict), body
    declared = set(typing.get_type_hints(model))
    unknown = set(body) - declared
    assert not unknown, f"{model.__name__} declares no {sorted(unknown)}"
    deserialize(body, model)
    return body


def listing(model: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    return answer(model, {"items": items,
                          "pagination": {"total_count": len(items), "max_page": 1}})


# ----------------------------------------------------------------------- the double


class FakePolar:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.organization_id = str(uuid.uuid4())
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.discounts: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.refund_status = "succeeded"  # what a new refund answers
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/v1/organizations/", self._organizations)
        app.router.add_get("/v1/checkouts/", self._list_checkouts)
        app.router.add_post("/v1/checkouts/", self._create_checkout)
        app.router.add_get("/v1/checkouts/{id}", self._get_checkout)
        app.router.add_get("/v1/orders/", self._list_orders)
        app.router.add_get("/v1/refunds/", self._list_refunds)
        app.router.add_post("/v1/refunds/", self._create_refund)
        app.router.add_get("/v1/discounts/{id}", self._get_discount)
        app.router.add_patch("/v1/discounts/{id}", self._update_discount)
        app.router.add_delete("/v1/discounts/{id}", self._delete_discount)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "Unauthorized", "detail": "bad token"},
                                     status=401)
        assert request.headers.get("Polar-Version") == API_VERSION
        return await handler(request)

    def _id(self) -> str:
        return str(uuid.UUID(int=next(self._counter) + (uuid.uuid4().int >> 64 << 64)))

    @staticmethod
    def _not_found(what: str) -> web.Response:
        body = answer(outputs.ResourceNotFound, {"error": "ResourceNotFound",
                                                 "detail": f"{what} not found"})
        return web.json_response(body, status=404)

    # -------------------------------------------------------------- organizations

    async def _organizations(self, request: web.Request) -> web.Response:
        org = answer(outputs.Organization, {"id": self.organization_id, "name": "Clinic",
                                            "slug": "clinic", "created_at": NOW})
        return web.json_response(listing(outputs.ListResourceOrganization, [org]))

    # -------------------------------------------------------------- checkouts

    async def _create_checkout(self, request: web.Request) -> web.Response:
        body = request_of(inputs.CheckoutCreate, await request.json())
        product = body["products"][0]
        price = body["prices"][product][0]
        assert price["amount_type"] == "fixed", price
        checkout_id = self._id()
        amount = price["price_amount"]
        checkout = answer(outputs.Checkout, {
            "id": checkout_id, "created_at": NOW, "status": "open",
            "client_secret": f"polar_c_{uuid.uuid4().hex}",
            "url": f"https://sandbox.polar.sh/checkout/polar_c_{checkout_id}",
            "expires_at": NOW, "success_url": body.get("success_url") or "",
            "return_url": body.get("return_url"), "amount": amount, "discount_amount": 0,
            "net_amount": amount, "tax_amount": 0, "total_amount": amount,
            "currency": price.get("price_currency", "usd"),
            "organization_id": self.organization_id, "product_id": product,
            "allow_discount_codes": body.get("allow_discount_codes", True),
            "customer_email": body.get("customer_email"),
            "metadata": body.get("metadata", {}),
        })
        self.checkouts[checkout_id] = checkout
        return web.json_response(checkout, status=201)

    async def _list_checkouts(self, request: web.Request) -> web.Response:
        product, query = request.query.get("product_id"), request.query.get("query")
        items = [c for c in reversed(self.checkouts.values())
                 if (not product or c["product_id"] == product)
                 and (not query or c["customer_email"] == query)]
        limit = int(request.query.get("limit", 10))
        return web.json_response(listing(outputs.ListResourceCheckout, items[:limit]))

    async def _get_checkout(self, request: web.Request) -> web.Response:
        checkout = self.checkouts.get(request.match_info["id"])
        if checkout is None:
            return self._not_found("checkout")
        return web.json_response(checkout)

    def pay(self, checkout_id: str, *, amount: int | None = None,
            currency: str | None = None) -> dict[str, Any]:
        """The customer pays the checkout (``amount``/``currency`` override what Polar
        charged, for mismatch tests); the ``order.paid`` webhook payload."""
        checkout = self.checkouts[checkout_id]
        checkout["status"] = "succeeded"
        paid = checkout["net_amount"] if amount is None else amount
        order_id = self._id()
        order = answer(outputs.Order, {
            "id": order_id, "created_at": NOW, "status": "paid", "paid": True,
            "subtotal_amount": paid, "discount_amount": 0, "net_amount": paid,
            "tax_amount": 0, "total_amount": paid, "due_amount": 0, "refunded_amount": 0,
            "currency": currency or checkout["currency"], "billing_reason": "purchase",
            "customer_id": self._id(), "product_id": checkout["product_id"],
            "checkout_id": checkout_id, "metadata": dict(checkout["metadata"]),
            "platform_fee_amount": 0, "platform_fee_currency": None,
            "refundable_amount": paid, "description": "Paymesh order",
        })
        self.orders[order_id] = order
        return self.event("order.paid", order)

    @staticmethod
    def event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"type": kind, "timestamp": datetime.now(UTC).isoformat(),
                "api_version": API_VERSION, "data": data}

    # -------------------------------------------------------------- orders and refunds

    async def _list_orders(self, request: web.Request) -> web.Response:
        checkout = request.query.get("checkout_id")
        items = [o for o in self.orders.values() if not checkout or o["checkout_id"] == checkout]
        return web.json_response(listing(outputs.ListResourceOrder, items))

    async def _list_refunds(self, request: web.Request) -> web.Response:
        order = request.query.get("order_id")
        items = [r for r in self.refunds.values() if not order or r["order_id"] == order]
        return web.json_response(listing(outputs.ListResourceRefund, items))

    async def _create_refund(self, request: web.Request) -> web.Response:
        body = request_of(inputs.RefundCreate, await request.json())
        order = self.orders.get(body["order_id"])
        if order is None:
            return self._not_found("order")
        if order["refundable_amount"] <= 0:
            return web.json_response(answer(outputs.RefundedAlready, {
                "error": "RefundedAlready", "detail": "Order is already fully refunded"}),
                status=403)
        if not 0 < body["amount"] <= order["refundable_amount"]:
            return web.json_response({"detail": [{"loc": ["body", "amount"],
                                                  "msg": "too much", "type": "value_error"}]},
                                     status=422)
        refund = answer(outputs.Refund, {
            "id": self._id(), "created_at": NOW, "metadata": body.get("metadata", {}),
            "status": self.refund_status, "reason": body["reason"], "amount": body["amount"],
            "tax_amount": 0, "currency": order["currency"],
            "organization_id": self.organization_id, "order_id": order["id"],
            "customer_id": order["customer_id"],
            "revoke_benefits": body.get("revoke_benefits", False), "dispute": None,
        })
        self.refunds[refund["id"]] = refund
        if self.refund_status == "succeeded":
            self.refunded(refund)
        return web.json_response(refund, status=201)

    def refunded(self, refund: dict[str, Any]) -> None:
        order = self.orders[refund["order_id"]]
        order["refunded_amount"] += refund["amount"]
        order["refundable_amount"] -= refund["amount"]
        order["status"] = "refunded" if order["refundable_amount"] == 0 \
            else "partially_refunded"

    # -------------------------------------------------------------- discounts

    def add_discount(self, max_redemptions: int | None, redemptions: int = 0) -> str:
        discount_id = self._id()
        self.discounts[discount_id] = answer(outputs.DiscountFixedOnceForeverDuration, {
            "id": discount_id, "created_at": NOW, "metadata": {}, "duration": "once",
            "type": "fixed", "amount": 500, "currency": "usd", "amounts": {"usd": 500},
            "name": "Spring", "code": "SPRING", "max_redemptions": max_redemptions,
            "redemptions_count": redemptions, "organization_id": self.organization_id,
            "products": []})
        return discount_id

    async def _get_discount(self, request: web.Request) -> web.Response:
        discount = self.discounts.get(request.match_info["id"])
        return web.json_response(discount) if discount else self._not_found("discount")

    async def _update_discount(self, request: web.Request) -> web.Response:
        body = request_of(inputs.DiscountUpdate, await request.json())
        discount = self.discounts.get(request.match_info["id"])
        if discount is None:
            return self._not_found("discount")
        discount.update(body)
        deserialize(discount, outputs.Discount)
        return web.json_response(discount)

    async def _delete_discount(self, request: web.Request) -> web.Response:
        if self.discounts.pop(request.match_info["id"], None) is None:
            return self._not_found("discount")
        return web.Response(status=204)


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
