"""Dramatiq actors. They take IDs only, are idempotent and declare their retry policy."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from datetime import datetime
from typing import Any

import dramatiq

import owner.models  # noqa: F401  (every mapper registered: the worker loads orders, …)
import tenant.models  # noqa: F401
from core import actors as names
from core.db import utcnow
from workers import context
from workers.broker import install_broker

install_broker()  # before any actor: each binds to the global broker when declared

log = logging.getLogger(__name__)


class EventNotApplied(Exception):
    """Raised so Dramatiq retries with backoff; the row says why."""


#: Dramatiq retries this actor only when it raises, which it does only when a try could
#: not be recorded (the database or the broker unreachable): such a try counts nothing.
#: A try that failed is counted on the event's inbox row, whose schedule (not Dramatiq's)
#: sends the next one: the actor returns normally and sends itself a delayed message for
#: the row's ``next_attempt_at``; the sweeper makes up for one that was lost.
@dramatiq.actor(actor_name=names.PROCESS_WEBHOOK_EVENT, max_retries=16, min_backoff=250,
                max_backoff=600_000, time_limit=120_000)
async def process_webhook_event(tenant_slug: str, event_id: str) -> None:
    from tenant.webhooks.processing import process_event

    target = await context.tenant(tenant_slug)
    if target is None:
        log.warning("skipping event %s: tenant %s unavailable", event_id, tenant_slug)
        return
    outcome = await process_event(context.runtime(), target, uuid.UUID(event_id))
    if outcome.retry_at is not None:
        await _try_again(tenant_slug, event_id, outcome.retry_at)


async def _try_again(tenant_slug: str, event_id: str, at: datetime) -> None:
    """Send the event's next try for ``at`` (its row's ``next_attempt_at``)."""
    delay_ms = max(0, math.ceil((at - utcnow()).total_seconds() * 1000))
    try:
        await asyncio.to_thread(process_webhook_event.send_with_options,
                                args=(tenant_slug, event_id), delay=delay_ms)
    except Exception as exc:  # noqa: BLE001 - the row keeps the schedule
        log.warning("event %s: next try not sent (%s); left for the sweeper", event_id,
                    type(exc).__name__)


@dramatiq.actor(actor_name=names.DELIVER_SANDBOX_WEBHOOK, max_retries=10, min_backoff=500,
                max_backoff=300_000, time_limit=60_000)
async def deliver_sandbox_webhook(delivery_id: str) -> None:
    """The sandbox gateway's outgoing webhook, sent like a real gateway would."""
    from providers.sandbox.gateway import deliver_webhook

    await deliver_webhook(delivery_id, context.runtime().http)


@dramatiq.actor(actor_name=names.DELIVER_NOTIFICATION, max_retries=8, min_backoff=1_000,
                max_backoff=600_000, time_limit=60_000)
async def deliver_notification(tenant_slug: str, notification_id: str) -> None:
    from tenant.notifications.service import deliver

    target = await context.tenant(tenant_slug)
    if target is None:
        return
    async with context.runtime().tenant_session(target.db_url) as session:
        status = await deliver(session, uuid.UUID(notification_id))
    if status == "failed":
        raise EventNotApplied(f"notification {notification_id} not sent yet; retrying")


async def _send_at(actor: Any, args: tuple[str, str], at: datetime, what: str) -> None:
    """Send ``actor`` again at ``at`` (its row keeps the schedule: if the broker is away,
    the scheduler's sweeper sends it instead)."""
    delay_ms = max(0, math.ceil((at - utcnow()).total_seconds() * 1000))
    try:
        await asyncio.to_thread(actor.send_with_options, args=args, delay=delay_ms)
    except Exception as exc:  # noqa: BLE001 - the row keeps the schedule
        log.warning("%s: next try not sent (%s); left for the sweeper", what,
                    type(exc).__name__)


#: A try's failure is recorded on the redemption (attempts, last error, next try), whose
#: schedule — not Dramatiq's — sends the next one (``PAYMESH_COUPON_SYNC_RETRY_BASE_MS``:
#: 2 s, 4 s, 8 s …); the sweeper sends a lost one. Dramatiq retries only when the try
#: could not even be recorded (database or broker down).
@dramatiq.actor(actor_name=names.SYNC_COUPON_DISCOUNT, max_retries=8, min_backoff=1_000,
                max_backoff=600_000, time_limit=120_000)
async def sync_coupon_discount(tenant_slug: str, order_id: str) -> None:
    from tenant.coupons.sync import run

    target = await context.tenant(tenant_slug)
    if target is None:
        return
    outcome = await run(context.runtime(), target, uuid.UUID(order_id))
    if outcome.retry_at is not None:
        await _send_at(sync_coupon_discount, (tenant_slug, order_id), outcome.retry_at,
                       f"coupon sync {order_id}")


#: On its own queue (``outgoing``): a receiver that takes its 15 s never holds a message
#: of the inbox back, and per endpoint at most a few run at once (the rest come back a
#: moment later without waiting on a thread; :mod:`tenant.outgoing.delivery`). Retries
#: follow the delivery rows' schedule, not Dramatiq's: Dramatiq retries only a try that
#: could not be recorded (the database away).
@dramatiq.actor(actor_name=names.DELIVER_OUTGOING_WEBHOOK, queue_name=names.QUEUES[
    names.DELIVER_OUTGOING_WEBHOOK], max_retries=10, min_backoff=1_000, max_backoff=300_000,
    time_limit=120_000)
async def deliver_outgoing_webhook(tenant_slug: str, delivery_id: str) -> None:
    from tenant.outgoing.delivery import deliver

    target = await context.tenant(tenant_slug)
    if target is None:
        return
    outcome = await deliver(context.runtime(), target, uuid.UUID(delivery_id))
    if outcome.next_id is not None and outcome.next_at is not None:
        await _send_at(deliver_outgoing_webhook, (tenant_slug, str(outcome.next_id)),
                       outcome.next_at, f"delivery {outcome.next_id}")
    if outcome.resend:  # batched deliveries given back unsent: their messages may be gone
        await _resend(tenant_slug, outcome.resend)


async def _resend(tenant_slug: str, delivery_ids: tuple[uuid.UUID, ...]) -> None:
    if not await context.runtime().enqueue_many(
            names.DELIVER_OUTGOING_WEBHOOK, [(tenant_slug, str(i)) for i in delivery_ids]):
        log.warning("%d deliveries given back unsent not sent again; left for the sweeper",
                    len(delivery_ids))
