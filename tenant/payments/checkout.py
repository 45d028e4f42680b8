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
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, circuit
from core.audit import Actor, audit_row, record
from core.audit import columns as audit_columns
from core.db import utcnow
from core.errors import NotFound, PaymeshError, ServiceUnavailable, UnprocessableError
from core.redis import get_redis
from core.runtime import Runtime
from core.sql import Sql, Transaction, flush, json_param, orm, sql
from core.tenancy import TenantContext
from providers.base import (
    CreatePayment,
    PaymentDeclined,
    PaymentResult,
    PaymentState,
    ProviderError,
    ProviderUnavailable,
)
from providers.registry import UnknownProvider
from tenant.audit.models import AuditLog
from tenant.orders import reservations
from tenant.orders import sql as order_sql
from tenant.orders.lifecycle import lock_order, move
from tenant.orders.models import Order
from tenant.orders.states import PAYABLE, OrderStatus, PaymentStatus
from tenant.payments import events
from tenant.payments.errors import OrderNotPayable, api_error
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus
from tenant.payments.reconcile import confirm
from tenant.payments.schemas import CheckoutOut
from tenant.payments.states import ATTEMPT_STATUS
from tenant.provider_configs import service as provider_configs
from tenant.provider_configs import snapshots
from tenant.settings.models import DEFAULT_RESERVATION_TTL_MINUTES

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


def default_urls(runtime: Runtime, tenant: TenantContext,
                 order: Order | LockedOrder) -> tuple[str, str]:
    base = f"{runtime.settings.public_url}/pay/{tenant.slug}/{order.pay_token}"
    return f"{base}/success", f"{base}/cancel"


def _result(attempt: Payment | SimpleNamespace, *, reused: bool, failed_over: list[str],
            client_secret: str | None = None) -> CheckoutOut:
    payment = events.to_out(attempt)  # type: ignore[arg-type]  # reads attributes only
    return CheckoutOut(payment=payment, redirect_url=attempt.redirect_url,
                       client_secret=client_secret or attempt.client_secret,
                       instructions=attempt.instructions or {}, reused=reused,
                       failed_over=failed_over)


@dataclass(frozen=True, slots=True)
class LockedOrder:
    """The order columns a checkout works with, read under the row lock."""

    id: uuid.UUID
    number: str
    status: str
    payment_status: str
    total: int
    currency: str
    customer_email: str
    pay_token: str


@dataclass(frozen=True, slots=True)
class _State:
    """What the checkout reads once the order lock is held."""

    live_id: uuid.UUID | None
    live_provider: str | None
    next_attempt: int
    holds_stock: bool
    ttl: int | None
    configs_version: list[str] | None


_LOCK_ORDER = """
SELECT id, number, status, payment_status, total, currency, customer_email, pay_token
FROM orders WHERE id = $1 FOR UPDATE
"""
#: Read under the lock (a statement of its own: a snapshot taken after the lock was
#: granted sees what a checkout that held it before us committed).
_STATE = f"""
SELECT live.id AS live_id, live.provider AS live_provider,
       (SELECT coalesce(max(attempt_number), 0) + 1 FROM payments WHERE order_id = $1)
           AS next_attempt,
       {reservations.has_stock_sql("$1")} AS holds_stock,
       (SELECT reservation_ttl_minutes FROM tenant_settings WHERE id = 1) AS ttl,
       ({snapshots.CONFIGS_VERSION_SQL}) AS configs_version
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT id, provider FROM payments
                   WHERE order_id = $1 AND status = ANY($2::text[])
                   ORDER BY attempt_number DESC LIMIT 1) AS live ON true
"""
_LIVE = [s.value for s in LIVE_STATUSES]
#: A provider answer as an attempt row (a provider that returns an id it gave before, like
#: cash's per-order id, revives that row instead of adding one), its audit row, and the
#: order's payment status when the attempt is open.
_STORE = f"""
WITH attempt AS (
    INSERT INTO payments (id, order_id, attempt_number, provider, idempotency_key, status,
                          amount, currency, provider_payment_id, redirect_url, client_secret,
                          instructions, fee_amount, failure_code, failure_message, flags,
                          created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '{{}}', $16, $16)
    ON CONFLICT (provider, provider_payment_id) DO UPDATE SET
        status = EXCLUDED.status, redirect_url = EXCLUDED.redirect_url,
        client_secret = EXCLUDED.client_secret, instructions = EXCLUDED.instructions,
        fee_amount = EXCLUDED.fee_amount, failure_code = EXCLUDED.failure_code,
        failure_message = EXCLUDED.failure_message, updated_at = EXCLUDED.updated_at
    WHERE payments.status || '>' || EXCLUDED.status = ANY({ATTEMPT_STATUS.pairs_sql()})
    RETURNING *
),
{audit.insert_sql(17, entity_id="attempt.id::text", join="attempt")},
pending AS ({order_sql.open_payment("$2", "$16", "$27")})
SELECT * FROM attempt
"""
_SUPERSEDE = (
    "UPDATE payments SET status = 'superseded', updated_at = $2 WHERE id = $1 AND status = "
    f"ANY({ATTEMPT_STATUS.sources_sql(PaymentAttemptStatus.SUPERSEDED)})")


async def _lock(statements: Sql, order_id: uuid.UUID) -> LockedOrder:
    row = await statements.fetchrow(_LOCK_ORDER, order_id)
    if row is None:
        raise NotFound(f"order {order_id} not found", param="id")
    return LockedOrder(*row)


async def _attempt(session: AsyncSession, attempt_id: uuid.UUID) -> Payment:
    """An attempt as an ORM object, fresh from the database."""
    return (await session.scalars(select(Payment).where(Payment.id == attempt_id)
                                  .execution_options(populate_existing=True))).one()


def _check_payable(order: Order | LockedOrder) -> None:
    if OrderStatus(order.status) not in PAYABLE:
        if order.payment_status != PaymentStatus.NOT_PAID:
            raise OrderNotPayable(f"order {order.number} is already paid",
                                  code="order_already_paid")
        raise OrderNotPayable(f"order {order.number} is {order.status} and cannot be paid")
    if order.total <= 0:
        raise UnprocessableError(f"order {order.number} has nothing to pay; mark it paid",
                                 code="nothing_to_pay")


async def _store(statements: Sql, order: LockedOrder, n: int, key: str, provider: str,
                 result: PaymentResult, *, actor: Actor, now: datetime,
                 failed_over: list[str]) -> SimpleNamespace:
    """The attempt row for a provider answer, with its audit row (see :data:`_STORE`).

    Returns the row's columns as attributes (for the response; not an ORM object).
    """
    status = _STATES[result.state]
    entry = audit_row(actor, "payment.checkout_started", "payment", None,
                      {"order_id": str(order.id), "provider": provider, "attempt": n,
                       "amount": order.total, "currency": order.currency,
                       "failed_over": failed_over})
    row = await statements.fetchrow(
        _STORE, uuid.uuid4(), order.id, n, provider, key, status, order.total, order.currency,
        result.provider_payment_id, result.redirect_url, result.client_secret,
        json_param(dict(result.instructions)), result.fee_amount, result.failure_code,
        result.failure_message, now, *audit_columns([entry]),
        result.state is not PaymentState.SUCCEEDED and status in LIVE_STATUSES)
    if row is None:  # the provider's id names an attempt the table may not move there
        current = await statements.fetchval(
            "SELECT status FROM payments WHERE provider = $1 AND provider_payment_id = $2",
            provider, result.provider_payment_id)
        ATTEMPT_STATUS.check(current, status, param="provider")
        raise AssertionError("INSERT … ON CONFLICT DO UPDATE returned no row")
    return SimpleNamespace(**row)


async def start_checkout(runtime: Runtime, db: AsyncSession | Transaction, tenant: TenantContext,
                         order_id: uuid.UUID, *, actor: Actor, provider: str | None = None,
                         return_url: str | None = None, cancel_url: str | None = None,
                         now: datetime | None = None, failover: bool = True) -> CheckoutResult:
    """Lock the order, pick providers, create the provider payment, record the attempt.

    The usual path is four plain statements (lock, state, attempt + audit + order status,
    and a ``last_used_at`` stamp at most once a minute); an open attempt to confirm, a
    failed earlier payment, stock holds and provider refusals go through the ORM services
    that own them (on an ORM session the transaction ``db`` makes only then).

    ``failover=False``: when ``provider`` was chosen (by a customer on the payment page)
    and cannot be reached, stop there with a ``provider_unavailable`` error instead of
    moving on to the next provider.
    """
    now = now or utcnow()
    statements = await sql(db)
    order = await _lock(statements, order_id)
    _check_payable(order)
    state = _State(*await statements.fetchrow(_STATE, order.id, _LIVE))  # type: ignore[misc]
    live_id = state.live_id
    if live_id is not None and provider in (None, state.live_provider):
        session = await orm(db)
        live = await _attempt(session, live_id)
        await confirm(runtime, session, tenant, live, actor)
        if live.status in LIVE_STATUSES:
            return CheckoutResult(out=_result(live, reused=True, failed_over=[]))
        if live.status == PaymentAttemptStatus.SUCCEEDED:
            return CheckoutResult(out=_result(live, reused=True, failed_over=[]))
        await session.flush()
        order = await _lock(statements, order_id)  # the confirmation may have moved it
        _check_payable(order)
        live_id = None
    configs = await snapshots.configs_at(db, tenant, state.configs_version)
    candidates = await provider_configs.candidates(runtime, None, tenant, order.currency,
                                                   order.total, explicit=provider,
                                                   configs=configs)
    if not candidates:
        raise UnprocessableError(
            f"no configured provider can take {order.currency} {order.total}",
            code="no_provider_available", param="provider")
    if state.holds_stock:
        ttl = state.ttl or DEFAULT_RESERVATION_TTL_MINUTES
        await reservations.hold_for_checkout(await orm(db), order.id,
                                             now + timedelta(minutes=ttl))
    if order.status == OrderStatus.PAYMENT_FAILED:
        session = await orm(db)
        await move(session, await lock_order(session, order.id), OrderStatus.PENDING_PAYMENT,
                   actor=actor, manual=False, now=now, reason="new checkout")
    if live_id is not None:
        if await statements.execute(_SUPERSEDE, live_id, now) == "UPDATE 0":
            log.error("attempt %s was no longer open to supersede", live_id)
        record(await orm(db), AuditLog, actor, "payment.superseded", "payment", live_id,
               {"order_id": str(order.id), "by_provider": provider})
    default_return, default_cancel = default_urls(runtime, tenant, order)
    n = state.next_attempt
    redis = get_redis()
    failed_over: list[str] = []
    for candidate in candidates:
        view = candidate.row  # a ConfigView: these candidates come from configs_at
        code = view.provider_code
        key = f"{tenant.slug}:{order.id}:{n}"
        request = CreatePayment(
            order_id=str(order.id), order_number=order.number, amount=order.total,
            currency=order.currency, idempotency_key=key, customer_email=order.customer_email,
            description=f"Order {order.number}", return_url=return_url or default_return,
            cancel_url=cancel_url or default_cancel,
            metadata={"order_id": str(order.id), "order_number": order.number})
        try:
            gateway = snapshots.build_for_checkout(runtime, tenant, view,
                                                   candidate.entry)
            result = await gateway.create_payment(request)
        except UnknownProvider:
            log.error("provider %s has no implementation; skipped", code)
            continue
        except ProviderUnavailable as exc:
            await circuit.record_failure(redis, tenant.slug, code)
            session = await orm(db)
            session.add(Payment(order_id=order.id, attempt_number=n, provider=code,
                                idempotency_key=key, status=PaymentAttemptStatus.FAILED,
                                amount=order.total, currency=order.currency, instructions={},
                                flags={}, failure_code=exc.code, failure_message=exc.message))
            record(session, AuditLog, actor, "payment.provider_unavailable", "order", order.id,
                   {"provider": code, "attempt": n, "message": exc.message[:200]})
            failed_over.append(code)
            n += 1
            if not failover and provider is not None:
                await flush(db)
                return CheckoutResult(error=ServiceUnavailable(
                    f"{candidate.entry.name} is unavailable right now; choose another "
                    "way to pay or retry shortly", code="provider_unavailable",
                    param="provider"))
            continue
        except ProviderError as exc:
            return await _refused(await orm(db), order, n, key, code, exc, actor)
        await circuit.record_success(redis, tenant.slug, code)
        await snapshots.stamp_used(runtime, db, tenant, view, now, LAST_USED_EVERY)
        attempt: Payment | SimpleNamespace = await _store(
            statements, order, n, key, code, result, actor=actor, now=now,
            failed_over=failed_over)
        if result.state is PaymentState.SUCCEEDED:
            session = await orm(db)
            attempt = await _attempt(session, attempt.id)
            await events.apply_success(session, await lock_order(session, order.id), attempt,
                                       amount=result.amount, currency=result.currency,
                                       fee_amount=result.fee_amount, actor=actor)
        elif attempt.status == PaymentAttemptStatus.FAILED:
            session = await orm(db)
            await move(session, await lock_order(session, order.id),
                       OrderStatus.PAYMENT_FAILED, actor=actor, manual=False,
                       reason=result.failure_message or "payment failed")
            error = api_error(PaymentDeclined(result.failure_message or "payment declined",
                                              code=result.failure_code), code)
            return CheckoutResult(error=error)
        await flush(db)
        return CheckoutResult(out=_result(attempt, reused=False, failed_over=failed_over,
                                          client_secret=result.client_secret), created=True)
    await flush(db)
    return CheckoutResult(error=ServiceUnavailable(
        f"every provider for {order.currency} is unavailable right now "
        f"(tried: {', '.join(failed_over) or 'none'}); retry shortly",
        code="provider_unavailable"))


async def _refused(session: AsyncSession, order: LockedOrder, n: int, key: str, code: str,
                   exc: ProviderError, actor: Actor) -> CheckoutResult:
    """A provider said no (declined, bad credentials, …): keep the attempt, report it."""
    session.add(Payment(order_id=order.id, attempt_number=n, provider=code, idempotency_key=key,
                        status=PaymentAttemptStatus.FAILED, amount=order.total,
                        currency=order.currency, instructions={}, flags={},
                        failure_code=exc.code[:64], failure_message=exc.message))
    record(session, AuditLog, actor, "payment.refused", "order", order.id,
           {"provider": code, "attempt": n, "code": exc.code})
    locked = await lock_order(session, order.id)
    if isinstance(exc, PaymentDeclined) and locked.status == OrderStatus.PENDING_PAYMENT:
        await move(session, locked, OrderStatus.PAYMENT_FAILED, actor=actor, manual=False,
                   reason=exc.message)
    await session.flush()
    return CheckoutResult(error=api_error(exc, code))
