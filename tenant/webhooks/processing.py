"""Applying inbox events (T10): idempotent, order-independent, retried, dead-lettered.

One event is processed in one tenant transaction: the row is locked (a second worker
waits, then sees it processed), the effects run inside a savepoint, and the event row
records the outcome. Effects are idempotent by construction (unique provider ids, status
checks in the payment services), so a redelivery or a replay never applies twice.
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
from core.tenancy import TenantContext
from providers.base import EventType
from tenant.webhooks.models import EventStatus, WebhookEvent

log = logging.getLogger(__name__)
#: Early retries are fast (Dramatiq backoff from 250 ms), later ones slow: about a day.
MAX_ATTEMPTS = 16
WORKER = Actor.system("worker")


class NotReady(Exception):
    """What the event depends on is not there yet (e.g. a refund before its payment)."""


def _not_ready(exc: Exception) -> bool:
    from tenant.webhooks.money_events import EventOutOfOrder

    return isinstance(exc, (NotReady, EventOutOfOrder))


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … capped at one hour (when the sweeper next re-enqueues it)."""
    return timedelta(seconds=min(3600, 2 ** max(0, attempts - 1)))


async def process(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID) -> str:
    """Apply one event; returns its resulting status."""
    async with runtime.tenant_session(tenant.db_url) as session:
        row = (await session.scalars(
            select(WebhookEvent).where(WebhookEvent.id == event_id).with_for_update()
        )).first()
        if row is None:
            return "missing"
        if row.status in (EventStatus.PROCESSED, EventStatus.DEAD):
            return row.status
        row.attempts += 1
        try:
            async with session.begin_nested():
                await apply(runtime, session, tenant, row.provider, row.normalized)
        except Exception as exc:  # noqa: BLE001 - recorded on the event, retried, then dead
            row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status, row.next_attempt_at = EventStatus.DEAD, None
                EVENTS_DEAD.labels(row.provider).inc()
                log.error("event %s dead after %s attempts: %s", row.id, row.attempts,
                          row.last_error)
            else:
                row.status = EventStatus.FAILED
                row.next_attempt_at = utcnow() + backoff(row.attempts)
                EVENTS_FAILED.labels(row.provider).inc()
                if not _not_ready(exc):
                    log.warning("event %s attempt %s failed: %s", row.id, row.attempts,
                                row.last_error)
            return row.status
        row.status, row.processed_at, row.last_error = EventStatus.PROCESSED, utcnow(), None
        row.next_attempt_at = None
        EVENTS_PROCESSED.labels(row.provider).inc()
        PROCESSING_LAG.observe(max(0.0, (row.processed_at - row.received_at).total_seconds()))
        return row.status


async def apply(runtime: Runtime, session: AsyncSession, tenant: TenantContext, provider: str,
                event: dict[str, Any]) -> None:
    """The effect of one normalized event (see :class:`providers.base.NormalizedEvent`)."""
    from tenant.payments import events as payments
    from tenant.webhooks.money_events import apply_money_event

    kind = EventType(event["type"])
    payment_id = event.get("provider_payment_id") or event.get("reference")
    if kind is EventType.PAYMENT_SUCCEEDED:
        attempt = await payments.find_attempt(session, provider, payment_id)
        if attempt is None:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
        amount, currency = _received(event, attempt.currency)
        await payments.mark_payment_succeeded(
            session, provider=provider, provider_payment_id=payment_id,
            amount=amount, currency=currency,
            fee_amount=event.get("fee_amount"), actor=WORKER)
    elif kind is EventType.PAYMENT_FAILED:
        if await payments.find_attempt(session, provider, payment_id) is None:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
        data = event.get("data") or {}
        await payments.mark_payment_failed(
            session, provider=provider, provider_payment_id=payment_id,
            failure_code=data.get("failure_code"), failure_message=data.get("failure_message"),
            actor=WORKER)
    elif kind in (EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED,
                  EventType.DISPUTE_OPENED, EventType.DISPUTE_CLOSED):
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
