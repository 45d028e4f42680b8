"""Checkout (T7): turn an unpaid order into a provider-side payment the customer can pay.

The order row is locked for the whole checkout, so two checkouts of one order run one
after the other. An open attempt is handed back (after asking the provider whether it is
still open) unless the caller names a different provider, in which case it is
superseded. Each new attempt gets the next attempt number and a deterministic provider
idempotency key ``{tenant}:{order}:{n}``: a retry after a crash or rollback recomputes
the same key and gets the same provider payment, never a second one.

Providers are tried in T2 order; one that is unavailable is recorded as a failed
attempt, counted against its circuit breaker, and the next one is tried.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import circuit
from core.audit import Actor, record
from core.db import utcnow
from core.errors import PaymeshError, ServiceUnavailable, UnprocessableError
from core.redis import get_redis
from core.runtime import Runtime
from core.tenancy import TenantContext
from providers.base import CreatePayment, PaymentDeclined, PaymentResult, PaymentState
from providers.base import ProviderError, ProviderUnavailable
from providers.registry import UnknownProvider
from tenant.audit.models import AuditLog
from tenant.orders import reservations
from tenant.orders.lifecycle import lock_order, move
from tenant.orders.models import Order
from tenant.orders.states import PAYABLE, OrderStatus, PaymentStatus
from tenant.payments import events
from tenant.payments.errors import OrderNotPayable, api_error
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus
from tenant.payments.reconcile import confirm
from tenant.payments.schemas import CheckoutOut
from tenant.provider_configs import service as provider_configs
from tenant.settings import service as settings_service

log = logging.getLogger(__name__)
#: ``provider_configs.last_used_at`` is refreshed at most this often (seconds).
LAST_USED_EVERY = 60

_STATES = {
    PaymentState.PENDING: PaymentAttemptStatus.PENDING,
    PaymentState.REQUIRES_ACTION: PaymentAttemptStatus.REQUIRES_ACTION,
    PaymentState.PROCESSING: PaymentAttemptStatus.PROCESSING,
    PaymentState.SUCCEEDED: PaymentAttemptStatus.PENDING,  # settled below via apply_success
    PaymentState.FAILED: PaymentAttemptStatus.FAILED,
    PaymentState.CANCELLED: PaymentAttemptStatus.CANCELLED,
}


@dataclass
class CheckoutResult:
    """What happened: an attempt to hand to the customer, or an error to show — with the
    attempts made so far kept (the caller commits them either way)."""

    out: CheckoutOut | None = None
    error: PaymeshError | None = None
    created: bool = False

    def outcome(self) -> tuple[int, Any]:
        if self.error is not None:
            return self.error.status_code, self.error.to_dict()
        return (201 if self.created else 200), self.out


def default_urls(runtime: Runtime, tenant: TenantContext, order: Order) -> tuple[str, str]:
    base = f"{runtime.settings.public_url}/pay/{tenant.slug}/{order.pay_token}"
    return f"{base}/success", f"{base}/cancel"


def _result(attempt: Payment, *, reused: bool, failed_over: list[str],
            client_secret: str | None = None) -> CheckoutOut:
    return CheckoutOut(payment=events.to_out(attempt), redirect_url=attempt.redirect_url,
                       client_secret=client_secret or attempt.client_secret,
                       instructions=attempt.instructions or {}, reused=reused,
                       failed_over=failed_over)


async def _live_attempt(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    return (await session.scalars(
        select(Payment).where(Payment.order_id == order_id, Payment.status.in_(LIVE_STATUSES))
        .order_by(Payment.attempt_number.desc()).limit(1))).first()


def _check_payable(order: Order) -> None:
    if OrderStatus(order.status) not in PAYABLE:
        if order.payment_status != PaymentStatus.NOT_PAID:
            raise OrderNotPayable(f"order {order.number} is already paid",
                                  code="order_already_paid")
        raise OrderNotPayable(f"order {order.number} is {order.status} and cannot be paid")
    if order.total <= 0:
        raise UnprocessableError(f"order {order.number} has nothing to pay; mark it paid",
                                 code="nothing_to_pay")


async def _store(session: AsyncSession, order: Order, n: int, key: str, provider: str,
                 result: PaymentResult) -> Payment:
    """The attempt row for a provider answer (a provider that returns an id it gave
    before, like cash's per-order id, revives that row instead of adding one)."""
    row = (await session.scalars(select(Payment).where(
        Payment.provider == provider,
        Payment.provider_payment_id == result.provider_payment_id))).first()
    if row is None:
        row = Payment(order_id=order.id, attempt_number=n, provider=provider,
                      idempotency_key=key, amount=order.total, currency=order.currency,
                      instructions={}, flags={})
        session.add(row)
    row.provider_payment_id = result.provider_payment_id
    row.status = _STATES[result.state]
    row.redirect_url = result.redirect_url
    row.client_secret = result.client_secret
    row.instructions = dict(result.instructions)
    row.fee_amount = result.fee_amount
    row.failure_code = result.failure_code
    row.failure_message = result.failure_message
    await session.flush()
    return row


async def start_checkout(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                         order_id: uuid.UUID, *, actor: Actor, provider: str | None = None,
                         return_url: str | None = None, cancel_url: str | None = None,
                         now: datetime | None = None) -> CheckoutResult:
    now = now or utcnow()
    order = await lock_order(session, order_id)
    _check_payable(order)
    live = await _live_attempt(session, order.id)
    if live is not None and provider in (None, live.provider):
        await confirm(runtime, session, tenant, live, actor)
        if live.status in LIVE_STATUSES:
            return CheckoutResult(out=_result(live, reused=True, failed_over=[]))
        if live.status == PaymentAttemptStatus.SUCCEEDED:
            return CheckoutResult(out=_result(live, reused=True, failed_over=[]))
        order = await lock_order(session, order_id)
        _check_payable(order)
        live = None
    candidates = await provider_configs.candidates(runtime, session, tenant, order.currency,
                                                   order.total, explicit=provider)
    if not candidates:
        raise UnprocessableError(
            f"no configured provider can take {order.currency} {order.total}",
            code="no_provider_available", param="provider")
    settings = await settings_service.load(session)
    await reservations.hold_for_checkout(
        session, order.id, now + timedelta(minutes=settings.reservation_ttl_minutes))
    if order.status == OrderStatus.PAYMENT_FAILED:
        await move(session, order, OrderStatus.PENDING_PAYMENT, actor=actor, manual=False,
                   now=now, reason="new checkout")
    if live is not None:
        live.status = PaymentAttemptStatus.SUPERSEDED
        record(session, AuditLog, actor, "payment.superseded", "payment", live.id,
               {"order_id": str(order.id), "by_provider": provider})
    default_return, default_cancel = default_urls(runtime, tenant, order)
    n = await events.next_attempt_number(session, order.id)
    redis = get_redis()
    failed_over: list[str] = []
    for candidate in candidates:
        code = candidate.row.provider_code
        key = f"{tenant.slug}:{order.id}:{n}"
        request = CreatePayment(
            order_id=str(order.id), order_number=order.number, amount=order.total,
            currency=order.currency, idempotency_key=key, customer_email=order.customer_email,
            description=f"Order {order.number}", return_url=return_url or default_return,
            cancel_url=cancel_url or default_cancel,
            metadata={"order_id": str(order.id), "order_number": order.number})
        try:
            gateway = provider_configs.build(runtime, tenant, candidate.row, candidate.entry)
            result = await gateway.create_payment(request)
        except UnknownProvider:
            log.error("provider %s has no implementation; skipped", code)
            continue
        except ProviderUnavailable as exc:
            await circuit.record_failure(redis, tenant.slug, code)
            session.add(Payment(order_id=order.id, attempt_number=n, provider=code,
                                idempotency_key=key, status=PaymentAttemptStatus.FAILED,
                                amount=order.total, currency=order.currency, instructions={},
                                flags={}, failure_code=exc.code, failure_message=exc.message))
            record(session, AuditLog, actor, "payment.provider_unavailable", "order", order.id,
                   {"provider": code, "attempt": n, "message": exc.message[:200]})
            failed_over.append(code)
            n += 1
            continue
        except ProviderError as exc:
            return await _refused(session, order, n, key, code, exc, actor)
        await circuit.record_success(redis, tenant.slug, code)
        last = candidate.row.last_used_at
        if last is None or (now - last).total_seconds() >= LAST_USED_EVERY:
            candidate.row.last_used_at = now  # one hot row per tenant: written at most once a minute
        attempt = await _store(session, order, n, key, code, result)
        record(session, AuditLog, actor, "payment.checkout_started", "payment", attempt.id,
               {"order_id": str(order.id), "provider": code, "attempt": n,
                "amount": order.total, "currency": order.currency, "failed_over": failed_over})
        if result.state is PaymentState.SUCCEEDED:
            await events.apply_success(session, order, attempt, amount=result.amount,
                                       currency=result.currency, fee_amount=result.fee_amount,
                                       actor=actor)
        elif attempt.status == PaymentAttemptStatus.FAILED:
            await move(session, order, OrderStatus.PAYMENT_FAILED, actor=actor, manual=False,
                       reason=result.failure_message or "payment failed")
            error = api_error(PaymentDeclined(result.failure_message or "payment declined",
                                              code=result.failure_code), code)
            return CheckoutResult(error=error)
        elif attempt.status in LIVE_STATUSES:
            order.payment_status = PaymentStatus.PENDING
        await session.flush()
        return CheckoutResult(out=_result(attempt, reused=False, failed_over=failed_over,
                                          client_secret=result.client_secret), created=True)
    await session.flush()
    return CheckoutResult(error=ServiceUnavailable(
        f"every provider for {order.currency} is unavailable right now "
        f"(tried: {', '.join(failed_over) or 'none'}); retry shortly",
        code="provider_unavailable"))


async def _refused(session: AsyncSession, order: Order, n: int, key: str, code: str,
                   exc: ProviderError, actor: Actor) -> CheckoutResult:
    """A provider said no (declined, bad credentials, …): keep the attempt, report it."""
    session.add(Payment(order_id=order.id, attempt_number=n, provider=code, idempotency_key=key,
                        status=PaymentAttemptStatus.FAILED, amount=order.total,
                        currency=order.currency, instructions={}, flags={},
                        failure_code=exc.code[:64], failure_message=exc.message))
    record(session, AuditLog, actor, "payment.refused", "order", order.id,
           {"provider": code, "attempt": n, "code": exc.code})
    if isinstance(exc, PaymentDeclined) and order.status == OrderStatus.PENDING_PAYMENT:
        await move(session, order, OrderStatus.PAYMENT_FAILED, actor=actor, manual=False,
                   reason=exc.message)
    await session.flush()
    return CheckoutResult(error=api_error(exc, code))
