"""Asking the provider what became of an open attempt, and applying the answer.

Webhooks are the normal path; this is the safety net for a lost or late webhook. It runs
when a customer returns to the payment page, before an open attempt is handed back on a
second checkout, and periodically from the scheduler (:func:`reconcile_pending`). The
answer comes from the provider's API with the tenant's own keys, never from the browser,
and is applied through the same idempotent functions the webhook worker uses.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.errors import NotFound
from core.runtime import Runtime
from core.tenancy import TenantContext
from providers.base import PaymentState, ProviderError
from providers.registry import UnknownProvider
from tenant.audit.models import AuditLog
from tenant.orders.lifecycle import lock_order, set_payment_status
from tenant.orders.states import PaymentStatus
from tenant.payments import events
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus
from tenant.payments.states import ATTEMPT_STATUS
from tenant.provider_configs import service as provider_configs

log = logging.getLogger(__name__)
RECONCILER = Actor.system("reconciler")
#: Attempts older than this are no longer polled (the order will be auto-cancelled).
MAX_AGE = timedelta(days=3)


async def confirm(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                  attempt: Payment, actor: Actor) -> bool:
    """Refresh one live attempt from its provider. True if something changed.

    Provider trouble is not an error here: the attempt simply stays as it was.
    """
    if attempt.status not in LIVE_STATUSES or not attempt.provider_payment_id:
        return False
    try:
        gateway = await provider_configs.provider_for(runtime, session, tenant, attempt.provider)
        result = await gateway.fetch_payment(attempt.provider_payment_id)
    except (ProviderError, UnknownProvider, NotFound) as exc:  # NotFound: config removed
        log.info("could not confirm %s:%s: %s", attempt.provider, attempt.provider_payment_id,
                 getattr(exc, "message", exc))
        return False
    ids = {"provider": attempt.provider, "provider_payment_id": attempt.provider_payment_id}
    if result.state is PaymentState.SUCCEEDED:
        return await events.mark_payment_succeeded(
            session, **ids, amount=result.amount, currency=result.currency,
            fee_amount=result.fee_amount, actor=actor)
    if result.state is PaymentState.FAILED:
        return await events.mark_payment_failed(
            session, **ids, failure_code=result.failure_code,
            failure_message=result.failure_message, actor=actor)
    if result.state is PaymentState.CANCELLED:
        order = await lock_order(session, attempt.order_id)
        await session.refresh(attempt, with_for_update=True)
        if not ATTEMPT_STATUS.can(attempt.status, PaymentAttemptStatus.CANCELLED):
            return False  # settled meanwhile (a webhook won the race)
        attempt.status = ATTEMPT_STATUS.check(attempt.status, PaymentAttemptStatus.CANCELLED)
        await session.flush()
        still_live = await session.scalar(select(Payment.id).where(
            Payment.order_id == order.id, Payment.status.in_(LIVE_STATUSES)))
        if still_live is None and order.payment_status == PaymentStatus.PENDING:
            set_payment_status(order, PaymentStatus.NOT_PAID)
        record(session, AuditLog, actor, "payment.cancelled_by_customer", "payment", attempt.id,
               {"order_id": str(order.id), "provider": attempt.provider})
        await session.flush()
        return True
    return False


async def reconcile_pending(runtime: Runtime, tenant: TenantContext, *,
                            limit: int = 200) -> int:
    """Scheduler job: confirm live attempts old enough that their webhook looks lost
    (``PAYMESH_RECONCILE_AFTER_SECONDS``; younger ones are left to their webhook)."""
    now = utcnow()
    min_age = timedelta(seconds=runtime.settings.reconcile_after_seconds)
    async with runtime.tenant_session(tenant.db_url) as session:
        ids = list((await session.scalars(
            select(Payment.id).where(Payment.status.in_(LIVE_STATUSES),
                                     Payment.provider_payment_id.is_not(None),
                                     Payment.created_at <= now - min_age,
                                     Payment.created_at >= now - MAX_AGE)
            .order_by(Payment.created_at).limit(limit))).all())
    changed = 0
    for payment_id in ids:
        async with runtime.tenant_session(tenant.db_url) as session:
            attempt = await session.get(Payment, payment_id)
            if attempt is not None and await confirm(runtime, session, tenant, attempt,
                                                     RECONCILER):
                changed += 1
    return changed


async def confirm_for_order(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                            order_id: object, provider_payment_id: str | None,
                            actor: Actor) -> bool:
    """A customer came back from the provider: confirm the attempt they were paying.

    ``provider_payment_id`` comes from the browser, so it only selects which of *this
    order's* attempts to ask the provider about; the provider's answer decides.
    """
    query = select(Payment).where(Payment.order_id == order_id,
                                  Payment.status.in_(LIVE_STATUSES))
    if provider_payment_id:
        query = query.where(Payment.provider_payment_id == provider_payment_id[:255])
    attempt = (await session.scalars(query.order_by(Payment.attempt_number.desc()))).first()
    if attempt is None:
        return False
    return await confirm(runtime, session, tenant, attempt, actor)
