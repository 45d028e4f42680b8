"""Applying inbox events (T10): idempotent, order-independent, retried, dead-lettered.

One event is processed in one tenant transaction: the row is locked (a second worker
waits, then sees it processed), and the effects commit together with the mark that they
were applied. When applying fails, that transaction rolls back and the failed attempt is
counted in one of its own. Effects are idempotent by construction (unique provider ids,
status checks in the payment services), so a redelivery or a replay never applies twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.db import utcnow
from core.errors import ValidationError
from core.metrics import EVENTS_DEAD, EVENTS_FAILED, EVENTS_PROCESSED, PROCESSING_LAG
from core.money import parse_major
from core.runtime import Runtime
from core.sql import Transaction, orm, sql
from core.tenancy import TenantContext
from providers.base import EventType
from tenant.webhooks.models import EventStatus, WebhookEvent

log = logging.getLogger(__name__)
#: Early retries are fast (Dramatiq backoff from 250 ms), later ones slow: about a day.
MAX_ATTEMPTS = 16
WORKER = Actor.system("worker")


class NotReady(Exception):
    """What the event depends on is not there yet (e.g. a refund before its payment)."""


def _not_ready(exc: BaseException | None) -> bool:
    from tenant.webhooks.money_events import EventOutOfOrder

    return isinstance(exc, (NotReady, EventOutOfOrder))


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … capped at one hour (when the sweeper next re-enqueues it)."""
    return timedelta(seconds=min(3600, 2 ** max(0, attempts - 1)))


#: Claims an event: row-locked (a second worker waits here, then finds it done).
_CLAIM = """
    SELECT provider, normalized, attempts, received_at FROM webhook_events
    WHERE id = $1 AND status NOT IN ('processed', 'dead')
    FOR UPDATE
"""
_STATUS = "SELECT status FROM webhook_events WHERE id = $1"
#: The outcome of an attempt, counted: processed, or failed (dead) with the error.
_PROCESSED = """
    UPDATE webhook_events SET status = 'processed', attempts = attempts + 1, processed_at = $2,
                              last_error = NULL, next_attempt_at = NULL
    WHERE id = $1
"""
_FAILED = """
    UPDATE webhook_events SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5
    WHERE id = $1
"""


class _NotApplied(Exception):
    """Rolls an event's transaction back; the failure is recorded in a transaction of its
    own (no savepoint on the way of every event that applies)."""


async def process(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID) -> str:
    """Apply one event; returns its resulting status."""
    try:
        async with runtime.tenants.transaction(tenant.db_url) as db:
            statements = await sql(db)
            claimed = await statements.fetchrow(_CLAIM, event_id)
            if claimed is None:  # unknown, or processed (or dead) before
                return await statements.fetchval(_STATUS, event_id) or "missing"
            provider, normalized, _, received_at = claimed
            try:
                await apply(runtime, db, tenant, provider, normalized)
            except Exception as exc:
                raise _NotApplied from exc
            now = utcnow()
            await statements.execute(_PROCESSED, event_id, now)
    except _NotApplied as failed:
        return await _record_failure(runtime, tenant, event_id, failed.__cause__)
    EVENTS_PROCESSED.labels(provider).inc()
    PROCESSING_LAG.observe(max(0.0, (now - received_at).total_seconds()))
    return EventStatus.PROCESSED


async def _record_failure(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID,
                          exc: BaseException | None) -> str:
    """Count the failed attempt (its effects were rolled back): retried later, or dead."""
    async with runtime.tenants.transaction(tenant.db_url) as db:
        statements = await sql(db)
        claimed = await statements.fetchrow(_CLAIM, event_id)
        if claimed is None:  # another worker processed it in the meantime
            return await statements.fetchval(_STATUS, event_id) or "missing"
        provider, _, attempts, _ = claimed
        attempts += 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts >= MAX_ATTEMPTS:
            status, next_attempt_at = EventStatus.DEAD, None
            EVENTS_DEAD.labels(provider).inc()
            log.error("event %s dead after %s attempts: %s", event_id, attempts, error)
        else:
            status, next_attempt_at = EventStatus.FAILED, utcnow() + backoff(attempts)
            EVENTS_FAILED.labels(provider).inc()
            if not _not_ready(exc):
                log.warning("event %s attempt %s failed: %s", event_id, attempts, error)
        await statements.execute(_FAILED, event_id, status.value, attempts, error,
                                 next_attempt_at)
    return status


async def apply(runtime: Runtime, db: AsyncSession | Transaction, tenant: TenantContext,
                provider: str, event: dict[str, Any]) -> None:
    """The effect of one normalized event (see :class:`providers.base.NormalizedEvent`).

    A payment's success is plain SQL on ``db``; the rarer events go through the ORM
    services (on the session ``db`` makes for them).
    """
    from tenant.payments import events as payments
    from tenant.payments.errors import UnknownPaymentAttempt
    from tenant.webhooks.money_events import apply_money_event

    kind = EventType(event["type"])
    payment_id = event.get("provider_payment_id") or event.get("reference")
    if kind is EventType.PAYMENT_SUCCEEDED:
        amount, currency = event.get("amount"), event.get("currency")
        if amount is None and currency is None:  # a bank feed may not know the currency
            attempt = await payments.find_attempt(await orm(db), provider, payment_id)
            if attempt is None:
                raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
            amount, currency = _received(event, attempt.currency)
        try:
            await payments.mark_payment_succeeded(
                db, provider=provider, provider_payment_id=payment_id,
                amount=amount, currency=currency,
                fee_amount=event.get("fee_amount"), actor=WORKER)
        except UnknownPaymentAttempt as exc:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet") from exc
    elif kind is EventType.PAYMENT_FAILED:
        session = await orm(db)
        if await payments.find_attempt(session, provider, payment_id) is None:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
        data = event.get("data") or {}
        await payments.mark_payment_failed(
            session, provider=provider, provider_payment_id=payment_id,
            failure_code=data.get("failure_code"), failure_message=data.get("failure_message"),
            actor=WORKER)
    elif kind in (EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED,
                  EventType.DISPUTE_OPENED, EventType.DISPUTE_CLOSED):
        session = await orm(db)
        attempt = await payments.find_attempt(session, provider, payment_id)
        if attempt is None or attempt.status != "succeeded":
            raise NotReady(f"{kind.value} for {provider}:{payment_id} before its payment")
        await apply_money_event(session, attempt_id=attempt.id, event=event, actor=WORKER)
    elif kind is EventType.ACCOUNT_UPDATED:
        log.info("account.updated for %s noted (Connect accounts are not modelled yet)",
                 event.get("provider_account_id"))
    # EventType.IGNORED: stored for the record, nothing to apply
    _ = runtime, tenant


def _received(event: dict[str, Any], attempt_currency: str) -> tuple[int | None, str | None]:
    """What arrived, in minor units. A provider that cannot know the currency (a bank feed
    for an account without one configured) sends ``data.amount_major``: it is read in the
    attempt's currency; one that does not fit it stays unknown, so the attempt is flagged."""
    amount, currency = event.get("amount"), event.get("currency")
    major = (event.get("data") or {}).get("amount_major")
    if amount is None and currency is None and major is not None:
        try:
            return parse_major(str(major), attempt_currency), attempt_currency
        except (ValidationError, ArithmeticError, ValueError):
            return None, None
    return amount, currency


async def due_events(session: AsyncSession, *, stuck_after: timedelta,
                     limit: int = 500) -> list[uuid.UUID]:
    """Events the sweeper should (re-)enqueue: received long ago, or failed and due."""
    now = utcnow()
    query = (
        select(WebhookEvent.id)
        .where(((WebhookEvent.status == EventStatus.RECEIVED)
                & (WebhookEvent.received_at <= now - stuck_after))
               | ((WebhookEvent.status == EventStatus.FAILED)
                  & (WebhookEvent.next_attempt_at <= now)))
        .order_by(WebhookEvent.received_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
