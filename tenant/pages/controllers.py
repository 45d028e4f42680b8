"""The customer's payment page (T8): ``/pay/{tenant}/{token}`` and its result pages.

The tenancy middleware resolves ``{tenant}`` (404 unknown, 403 suspended); this router
turns those and every other failure into a friendly HTML page — never JSON, never a
stack trace. Requests are rate-limited per client address and tenant with Litestar's
``RateLimitConfig`` over Redis (failing open if Redis is down: a payment page that stays
up matters more than the limit).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import PaymeshError
from core.http import EXCEPTION_HANDLERS
from core.ratelimit import FailOpenRateLimit, RedisRateLimitConfig, client_of
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.orders import service as orders
from tenant.orders.schemas import OrderOut
from tenant.orders.states import PAYABLE, OrderStatus, PaymentStatus
from tenant.pages.render import message, page
from tenant.payments.checkout import start_checkout
from tenant.payments.models import PaymentAttemptStatus
from tenant.payments.reconcile import confirm_for_order
from tenant.provider_configs import service as provider_configs

log = logging.getLogger(__name__)
#: Requests per client address and tenant.
RATE_LIMIT: tuple[Any, int] = ("minute", 60)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


# ----------------------------------------------------------------------------- rate limit


def _client_and_tenant(request: Request[Any, Any, Any]) -> str:
    return f"{client_of(request)}:{request.path_params.get('slug', '')}"


RATE_LIMIT_CONFIG = RedisRateLimitConfig(rate_limit=RATE_LIMIT,
                                         identifier_for_request=_client_and_tenant,
                                         middleware_class=FailOpenRateLimit,
                                         namespace="paymesh:ratelimit:pay")


# ----------------------------------------------------------------------------- errors

_FRIENDLY = {
    400: ("This request could not be understood", "Please go back and try again."),
    403: ("Payments are unavailable", "This merchant cannot take payments at the moment."),
    404: ("Payment link not found",
          "We could not find this payment link. Please check the link you were sent."),
    429: ("Too many requests", "Please wait a minute and try again."),
}


def html_error(_: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    status = getattr(exc, "status_code", 500)
    headers = getattr(exc, "headers", None) if isinstance(exc, HTTPException) else None
    if not isinstance(exc, (PaymeshError, HTTPException)) or status >= 500:
        log.exception("payment page failed", exc_info=exc)
        status = 500 if status < 500 else status
    title, text = _FRIENDLY.get(status, ("Something went wrong",
                                         "Please try again in a moment."))
    return message(title, text, status=status, headers=headers or None)


# ----------------------------------------------------------------------------- pages


def _links(slug: str, token: str) -> dict[str, str]:
    base = f"/pay/{slug}/{token}"
    return {"back_url": base, "checkout_url": f"{base}/checkout"}


async def _order(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                 token: str) -> OrderOut | None:
    if not _TOKEN.match(token):
        return None
    return await orders.read_by_token(session, token,
                                      f"{runtime.settings.public_url}/pay/{tenant.slug}")


def _not_found() -> Response[str]:
    return message(*_FRIENDLY[404], status=404)


async def _invoice(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                   order: OrderOut, token: str, *, error: str | None = None,
                   status: int = 200, failed: str | None = None) -> Response[str]:
    """The invoice with the providers the customer can choose (``failed``: one that just
    could not be reached, left out so the customer picks another)."""
    payable = OrderStatus(order.status) in PAYABLE and order.total > 0
    providers: list[dict[str, str]] = []
    if payable:
        try:
            found = await provider_configs.candidates(runtime, session, tenant, order.currency,
                                                      order.total)
        except PaymeshError:
            found = []
        providers = [{"code": c.row.provider_code, "name": c.entry.name} for c in found
                     if c.row.provider_code != failed]
    return page("invoice.html", status=status, order=order, tenant_name=tenant.name,
                providers=providers, payable=payable, error=error,
                **_links(tenant.slug, token))


@get("/{slug:str}/{token:str}")
async def invoice_page(runtime: Runtime, tenant: TenantContext, tenant_db: AsyncSession,
                       token: str) -> Response[str]:
    order = await _order(runtime, tenant_db, tenant, token)
    if order is None:
        return _not_found()
    return await _invoice(runtime, tenant_db, tenant, order, token)


@post("/{slug:str}/{token:str}/checkout", status_code=303)
async def checkout(request: Request[Any, Any, Any], runtime: Runtime, tenant: TenantContext,
                   tenant_db: AsyncSession, actor: Actor, token: str) -> Response[Any]:
    order = await _order(runtime, tenant_db, tenant, token)
    if order is None:
        return _not_found()
    form = await request.form()
    chosen = str(form.get("provider") or "").strip() or None
    try:
        async with tenant_db.begin_nested():  # a refusal before any attempt leaves no trace
            # the customer's choice is kept: a provider that fails is reported, never
            # silently swapped for another
            result = await start_checkout(runtime, tenant_db, tenant, uuid.UUID(order.id),
                                          actor=actor, provider=chosen, failover=False)
    except PaymeshError as exc:
        order = await _order(runtime, tenant_db, tenant, token) or order
        return await _invoice(runtime, tenant_db, tenant, order, token, error=exc.message,
                              status=exc.status_code)
    links = _links(tenant.slug, token)
    if result.error is not None or result.out is None:
        order = await _order(runtime, tenant_db, tenant, token) or order
        error = result.error.message if result.error else "The payment could not be started."
        failed = (chosen if result.error is not None
                  and getattr(result.error, "code", None) == "provider_unavailable" else None)
        return await _invoice(runtime, tenant_db, tenant, order, token, error=error,
                              status=result.error.status_code if result.error else 502,
                              failed=failed)
    out = result.out
    if out.payment.status == PaymentAttemptStatus.SUCCEEDED:
        return Redirect(path=f"{links['back_url']}/success", status_code=303)
    if out.redirect_url:
        return Redirect(path=out.redirect_url, status_code=303)
    return page("instructions.html", order=order, instructions=out.instructions,
                provider_name=out.payment.provider, title="How to pay", **links)


async def _result(runtime: Runtime, session: AsyncSession, tenant: TenantContext, token: str,
                  payment_id: str | None, actor: Actor, *, cancelled: bool) -> Response[str]:
    order = await _order(runtime, session, tenant, token)
    if order is None:
        return _not_found()
    if OrderStatus(order.status) in PAYABLE:
        await confirm_for_order(runtime, session, tenant, uuid.UUID(order.id), payment_id, actor)
        order = await _order(runtime, session, tenant, token) or order
    links = _links(tenant.slug, token)
    common = {"order": order, "tenant_name": tenant.name, "back_url": links["back_url"]}
    if order.payment_status == PaymentStatus.PAID:
        return page("result.html", title="Payment received",
                    text="Thank you! Your payment was received.",
                    back_label="View the invoice", **common)
    if order.status == OrderStatus.CANCELLED:
        return page("result.html", title="Invoice cancelled",
                    text="This invoice was cancelled and can no longer be paid.",
                    back_label="View the invoice", **common)
    if order.status == OrderStatus.PAYMENT_FAILED:
        return page("result.html", title="Payment failed",
                    text=order.status_reason or "Your payment did not go through.",
                    back_label="Try again", **common)
    if cancelled:
        return page("result.html", title="Payment cancelled",
                    text="You cancelled the payment. Your invoice is still open.",
                    back_label="Choose how to pay", **common)
    return page("result.html", title="Confirming your payment",
                text="We are waiting for the payment provider to confirm your payment. "
                     "This page refreshes by itself.", back_label="View the invoice",
                refresh=True, **common)


@get("/{slug:str}/{token:str}/success")
async def success_page(runtime: Runtime, tenant: TenantContext, tenant_db: AsyncSession,
                       actor: Actor, token: str,
                       payment_id: str | None = None) -> Response[str]:
    return await _result(runtime, tenant_db, tenant, token, payment_id, actor, cancelled=False)


@get("/{slug:str}/{token:str}/cancel")
async def cancel_page(runtime: Runtime, tenant: TenantContext, tenant_db: AsyncSession,
                      actor: Actor, token: str,
                      payment_id: str | None = None) -> Response[str]:
    return await _result(runtime, tenant_db, tenant, token, payment_id, actor, cancelled=True)


pay_router = Router(
    path="/pay",
    route_handlers=[invoice_page, checkout, success_page, cancel_page],
    middleware=[RATE_LIMIT_CONFIG.middleware],
    exception_handlers={kind: html_error for kind in EXCEPTION_HANDLERS},
    include_in_schema=False,
)
