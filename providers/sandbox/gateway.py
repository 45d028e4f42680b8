"""The sandbox gateway's HTTP face: a JSON API, a hosted checkout page and webhook sending.

Mounted by the composition root at ``/sandbox``:

* ``/sandbox/api/v1`` — ``POST /payments``, ``GET /payments/{id}``, ``POST /refunds``,
  ``POST /payments/{id}/dispute``, ``GET /account``; ``Authorization: Bearer sk_sandbox_…``,
  ``Idempotency-Key`` on creates; errors ``{"error": {"type", "code", "message", "param"}}``.
* ``/sandbox/checkout/{id}`` — the hosted page (GET form, POST ``card_number``, POST
  ``…/cancel``), answering 303 to the merchant's return URL.

Webhooks leave through :func:`deliver_webhook`, called by a worker with the delivery id the
gateway hands to ``dispatch``: the router never blocks a customer on a merchant endpoint.

A process that serves the router also answers the provider half's creates and reads
in-process (:func:`serves`, :func:`api_create_payment`, :func:`api_read_payment`): the
same body validation, engine call and JSON view as the HTTP endpoints, minus a loopback
HTTP round trip through this very process. Everything else (the hosted page, refunds,
disputes, signed webhooks through a worker) stays on HTTP.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.enums import MediaType
from litestar.response import Redirect

from core.ratelimit import FailOpenRateLimit, RedisRateLimitConfig, client_of
from providers.sandbox import engine, store
from providers.sandbox.models import (
    DisputeBody,
    GatewayError,
    Payment,
    PaymentBody,
    PaymentStatus,
    RefundBody,
    payment_view,
    refund_view,
    result_url,
)
from providers.sandbox.pages import checkout_page, not_found_page, result_page
from providers.sandbox.signing import SIGNATURE_HEADER, signature_header
from providers.transport import DEFAULT_TIMEOUT

log = logging.getLogger(__name__)

Dispatch = Callable[[str], Awaitable[None] | None]
S = TypeVar("S", bound=msgspec.Struct)

#: Largest JSON body the gateway API accepts.
MAX_BODY_BYTES = 64 * 1024


class WebhookDeliveryFailed(RuntimeError):
    """The merchant endpoint was unreachable or answered non-2xx; the caller retries."""


class UnknownDelivery(LookupError):
    """No such delivery (expired or never queued): retrying cannot help."""


# ------------------------------------------------------------------ helpers


def _json(content: Any, status: int = 200) -> Response[Any]:
    return Response(content=content, status_code=status, media_type=MediaType.JSON)


def _html(content: str, status: int = 200) -> Response[str]:
    return Response(content=content, status_code=status, media_type=MediaType.HTML)


def _error(_: Request[Any, Any, Any], exc: GatewayError) -> Response[Any]:
    kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
    body = {"type": kind, "code": exc.code, "message": exc.message, "param": exc.param}
    return _json({"error": body}, exc.status)


def _bearer(request: Request[Any, Any, Any]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _decode(request: Request[Any, Any, Any], type_: type[S]) -> S:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise GatewayError(413, "payload_too_large", "Request body is too large.")
    try:
        return msgspec.json.decode(raw or b"{}", type=type_)
    except msgspec.ValidationError as exc:
        raise GatewayError(400, "parameter_invalid", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise GatewayError(400, "invalid_json", "Request body is not valid JSON.") from exc
    except RecursionError:
        raise GatewayError(400, "invalid_json", "Request body is nested too deeply.") from None


def _convert(body: Any, type_: type[S]) -> S:
    """:func:`_decode` for a body that is already Python data (an in-process call)."""
    try:
        return msgspec.convert({} if body is None else body, type=type_)
    except msgspec.ValidationError as exc:
        raise GatewayError(400, "parameter_invalid", str(exc)) from exc


# ------------------------------------------------------------------ API operations

#: True once this process has built the router, i.e. serves the gateway API itself.
_served_here = False


def api_base_url(public_url: str) -> str:
    return f"{public_url}/sandbox/api/v1"


def serves(base_url: str) -> bool:
    """Whether ``base_url`` is the gateway API this process serves (shared Redis state)."""
    return _served_here and base_url == api_base_url(engine.public_url())


async def api_create_payment(secret_key: str | None, body: Any, key: str | None) -> dict[str, Any]:
    """``POST /api/v1/payments``: ``body`` is the decoded JSON object."""
    payment_body = body if isinstance(body, PaymentBody) else _convert(body, PaymentBody)
    payment = await engine.create_payment(secret_key, payment_body, key)
    return payment_view(payment, engine.public_url())


async def api_read_payment(secret_key: str | None, payment_id: str) -> dict[str, Any]:
    """``GET /api/v1/payments/{payment_id}``."""
    account = engine.account_for(secret_key)
    payment = await engine.get_payment(payment_id, account=account)
    return payment_view(payment, engine.public_url())


def _after_result(payment: Payment) -> Response[Any]:
    url = result_url(payment)
    if url is None:
        return _html(result_page(payment))
    return Redirect(path=url, status_code=303)


# ------------------------------------------------------------------ router


#: The hosted pages, per client address (Litestar's rate limiting over Redis).
PAGE_RATE_LIMIT = RedisRateLimitConfig(rate_limit=("minute", 120),
                                       identifier_for_request=client_of,
                                       middleware_class=FailOpenRateLimit,
                                       namespace="paymesh:ratelimit:sandbox")


def create_gateway_router(dispatch: Dispatch) -> Router:
    """The ``/sandbox`` router. ``dispatch(delivery_id)`` must arrange :func:`deliver_webhook`.

    ``dispatch`` runs after the state change is committed; if it fails the delivery stays in
    :func:`store.pending_deliveries` for a sweeper, and the customer still sees the result.
    """

    global _served_here
    _served_here = True

    async def send_later(delivery_id: str | None) -> None:
        if delivery_id is None:
            return
        try:
            result = dispatch(delivery_id)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the delivery is stored: a sweeper re-dispatches it
            log.exception("sandbox: could not dispatch webhook delivery %s", delivery_id)

    @post("/api/v1/payments")
    async def create_payment(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await _decode(request, PaymentBody)
        key = request.headers.get("idempotency-key")
        return _json(await api_create_payment(_bearer(request), body, key))

    @get("/api/v1/payments/{payment_id:str}")
    async def read_payment(request: Request[Any, Any, Any], payment_id: str) -> Response[Any]:
        return _json(await api_read_payment(_bearer(request), payment_id))

    @post("/api/v1/refunds")
    async def create_refund(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await _decode(request, RefundBody)
        key = request.headers.get("idempotency-key")
        record, payment, delivery = await engine.refund(_bearer(request), body, key)
        await send_later(delivery)
        return _json(refund_view(record, payment))

    @post("/api/v1/payments/{payment_id:str}/dispute")
    async def simulate_dispute(request: Request[Any, Any, Any], payment_id: str) -> Response[Any]:
        body = await _decode(request, DisputeBody)
        payment, delivery = await engine.dispute(_bearer(request), payment_id, body)
        await send_later(delivery)
        return _json(payment_view(payment, engine.public_url()))

    @get("/api/v1/account")
    async def read_account(request: Request[Any, Any, Any]) -> Response[Any]:
        account = engine.account_for(_bearer(request))
        return _json({"id": account, "object": "account", "livemode": False})

    @get("/checkout/{payment_id:str}", middleware=[PAGE_RATE_LIMIT.middleware])
    async def checkout_form(payment_id: str) -> Response[Any]:
        try:
            payment = await engine.get_payment(payment_id)
        except GatewayError:
            return _html(not_found_page(payment_id), 404)
        return _html(checkout_page(payment))

    @post("/checkout/{payment_id:str}", middleware=[PAGE_RATE_LIMIT.middleware])
    async def checkout_submit(request: Request[Any, Any, Any], payment_id: str) -> Response[Any]:
        form = await request.form()
        card_number = re.sub(r"[\s-]", "", str(form.get("card_number") or ""))
        try:
            payment, delivery = await engine.pay(payment_id, card_number)
        except GatewayError as exc:
            if exc.status == 404:
                return _html(not_found_page(payment_id), 404)
            payment = await engine.get_payment(payment_id)
            if payment.status is not PaymentStatus.REQUIRES_PAYMENT:
                return _after_result(payment)
            message = "That card number is not a sandbox test card. Use one of the cards below."
            return _html(checkout_page(payment, error=message, card_number=card_number), 422)
        await send_later(delivery)
        return _after_result(payment)

    @post("/checkout/{payment_id:str}/cancel", middleware=[PAGE_RATE_LIMIT.middleware])
    async def checkout_cancel(payment_id: str) -> Response[Any]:
        try:
            payment = await engine.cancel(payment_id)
        except GatewayError:
            return _html(not_found_page(payment_id), 404)
        return _after_result(payment)

    return Router(
        path="/sandbox",
        route_handlers=[
            create_payment,
            read_payment,
            create_refund,
            simulate_dispute,
            read_account,
            checkout_form,
            checkout_submit,
            checkout_cancel,
        ],
        exception_handlers={GatewayError: _error},
        include_in_schema=False,
        request_max_body_size=MAX_BODY_BYTES,
    )


# ------------------------------------------------------------------ webhook sending


async def deliver_webhook(
    delivery_id: str, http: httpx.AsyncClient, *, force: bool = False
) -> None:
    """POST a stored delivery to its ``notify_url``, signed now; raise unless 2xx.

    Already-delivered deliveries are skipped unless ``force`` (a manual resend). Raises
    :class:`WebhookDeliveryFailed` (retry) or :class:`UnknownDelivery` (don't).
    """
    delivery = await store.load_delivery(delivery_id)
    if delivery is None:
        raise UnknownDelivery(f"no sandbox webhook delivery {delivery_id!r}")
    if delivery.delivered_at is not None and not force:
        return
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Paymesh-Sandbox/1.0",
        "Sandbox-Delivery": delivery.id,
        "Sandbox-Event-Type": delivery.event_type.value,
        SIGNATURE_HEADER: signature_header(delivery.secret, timestamp, body),
    }
    delivery.attempts += 1
    try:
        response = await http.post(
            delivery.url, content=body, headers=headers, timeout=DEFAULT_TIMEOUT
        )
    except httpx.HTTPError as exc:
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:300]
        await store.save_delivery(delivery)
        raise WebhookDeliveryFailed(
            f"delivery {delivery_id} failed: {delivery.last_error}"
        ) from exc
    if not 200 <= response.status_code < 300:
        delivery.last_error = f"HTTP {response.status_code}"
        await store.save_delivery(delivery)
        raise WebhookDeliveryFailed(f"delivery {delivery_id} answered {delivery.last_error}")
    delivery.delivered_at = int(time.time())
    delivery.last_error = None
    await store.save_delivery(delivery)
