"""Dramatiq actors. They take IDs only, are idempotent and declare their retry policy."""

from __future__ import annotations

import logging
import uuid

import dramatiq

import owner.models  # noqa: F401  (every mapper registered: the worker loads orders, …)
import tenant.models  # noqa: F401
from core import actors as names
from workers import context
from workers.broker import install_broker

install_broker()  # before any actor: each binds to the global broker when declared

log = logging.getLogger(__name__)


class EventNotApplied(Exception):
    """Raised so Dramatiq retries with backoff; the event row says why."""


@dramatiq.actor(actor_name=names.PROCESS_WEBHOOK_EVENT, max_retries=16, min_backoff=250,
                max_backoff=600_000, time_limit=120_000)
async def process_webhook_event(tenant_slug: str, event_id: str) -> None:
    from tenant.webhooks.processing import process

    target = await context.tenant(tenant_slug)
    if target is None:
        log.warning("skipping event %s: tenant %s unavailable", event_id, tenant_slug)
        return
    status = await process(context.runtime(), target, uuid.UUID(event_id))
    if status == "failed":
        raise EventNotApplied(f"event {event_id} not applied yet; retrying")


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
