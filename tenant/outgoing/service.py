"""Webhook endpoints (several per tenant), their secrets, the delivery log and manual
redelivery (SPEC 3a, T24)."""

from __future__ import annotations

import enum
import uuid
from datetime import timedelta

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, utcnow, where_state
from core.errors import Conflict, NotFound, UnprocessableError
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.audit.models import AuditLog
from tenant.outgoing import events, guard, secrets
from tenant.outgoing.events import EventType
from tenant.outgoing.models import OutgoingDelivery, OutgoingEvent, WebhookEndpoint
from tenant.outgoing.schemas import DeliveryOut, EndpointIn, EndpointOut, EndpointPatch, RotateIn


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXHAUSTED = "exhausted"


def to_out(row: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
    live_previous = (row.previous_expires_at if row.previous_secret_enc is not None
                     and row.previous_expires_at is not None
                     and row.previous_expires_at > utcnow() else None)
    return EndpointOut(id=str(row.id), url=row.url, events=list(row.events or []),
                       description=row.description, enabled=row.enabled,
                       disabled_reason=row.disabled_reason, created_at=row.created_at,
                       updated_at=row.updated_at, secret=secret,
                       previous_secret_expires_at=live_previous)


def _event_types(values: list[str] | None) -> list[str]:
    """The filter, checked: unknown types are a 422 naming the known ones."""
    known = set(EventType)
    unknown = [v for v in values or [] if v not in known]
    if unknown:
        raise UnprocessableError(
            f"unknown event type {', '.join(repr(u) for u in unknown)}; one of "
            f"{', '.join(EventType)}", param="events", code="unknown_event_type")
    return list(dict.fromkeys(values or []))


async def _checked_url(runtime: Runtime, url: str) -> str:
    url = url.strip()
    await guard.check_url(url, allow_private=runtime.settings.webhook_allow_private)
    return url


async def create(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                 data: EndpointIn, actor: Actor) -> EndpointOut:
    kinds = _event_types(data.events)
    url = await _checked_url(runtime, data.url)
    secret = secrets.new_secret()
    now = utcnow()
    row = WebhookEndpoint(id=uuid.uuid4(), url=url, events=kinds,
                          description=data.description, enabled=True, created_at=now,
                          updated_at=now)
    row.secret_enc = secrets.encrypt(runtime, tenant, row.id, secret)
    session.add(row)
    record(session, AuditLog, actor, "webhook_endpoint.created", "webhook_endpoint", row.id,
           {"url": url, "events": kinds})
    await session.flush()
    return to_out(row, secret)


async def _get(session: AsyncSession, endpoint_id: uuid.UUID, *,
               lock: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    row = (await session.scalars(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", param="id")
    return row


async def get(session: AsyncSession, endpoint_id: uuid.UUID) -> EndpointOut:
    return to_out(await _get(session, endpoint_id))


async def list_endpoints(session: AsyncSession, *, page: int,
                         limit: int) -> tuple[list[EndpointOut], bool]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def update(runtime: Runtime, session: AsyncSession, endpoint_id: uuid.UUID,
                 data: EndpointPatch, actor: Actor) -> EndpointOut:
    row = await _get(session, endpoint_id, lock=True)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items()
               if v is not msgspec.UNSET}
    if "url" in changes:
        row.url = await _checked_url(runtime, changes["url"])
    if "events" in changes:
        row.events = _event_types(changes["events"])
    if "description" in changes:
        row.description = changes["description"]
    if "enabled" in changes:
        row.enabled = changes["enabled"]
        if row.enabled:  # enabled again: a clean slate
            row.disabled_reason, row.first_failure_at = None, None
    row.updated_at = utcnow()
    record(session, AuditLog, actor, "webhook_endpoint.updated", "webhook_endpoint", row.id,
           {k: v for k, v in changes.items()})
    await session.flush()
    return to_out(row)


async def delete(session: AsyncSession, endpoint_id: uuid.UUID, actor: Actor) -> None:
    """Gone with its delivery log (a deleted endpoint's deliveries mean nothing)."""
    row = await _get(session, endpoint_id, lock=True)
    record(session, AuditLog, actor, "webhook_endpoint.deleted", "webhook_endpoint", row.id,
           {"url": row.url})
    await session.delete(row)
    await session.flush()


async def rotate(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                 endpoint_id: uuid.UUID, data: RotateIn, actor: Actor) -> EndpointOut:
    """A new secret; the current one keeps signing (a second signature) for
    ``overlap_seconds``, so receivers can switch without missing a delivery."""
    row = await _get(session, endpoint_id, lock=True)
    secret = secrets.new_secret()
    now = utcnow()
    if data.overlap_seconds > 0:
        row.previous_secret_enc = row.secret_enc
        row.previous_expires_at = now + timedelta(seconds=data.overlap_seconds)
    else:
        row.previous_secret_enc, row.previous_expires_at = None, None
    row.secret_enc = secrets.encrypt(runtime, tenant, row.id, secret)
    row.updated_at = now
    record(session, AuditLog, actor, "webhook_endpoint.secret_rotated", "webhook_endpoint",
           row.id, {"overlap_seconds": data.overlap_seconds})
    await session.flush()
    return to_out(row, secret)


def _delivery_out(row: OutgoingDelivery, event_type: str) -> DeliveryOut:
    return DeliveryOut(id=str(row.id), event_id=str(row.event_id), event_type=event_type,
                       endpoint_id=str(row.endpoint_id), attempt=row.attempt,
                       status=row.status, response_status=row.response_status,
                       latency_ms=row.latency_ms, error=row.error,
                       next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                       created_at=row.created_at)


async def deliveries(session: AsyncSession, endpoint_id: uuid.UUID, *, page: int, limit: int,
                     status: str | None) -> tuple[list[DeliveryOut], bool]:
    await _get(session, endpoint_id)
    query = (select(OutgoingDelivery, OutgoingEvent.type)
             .join(OutgoingEvent, OutgoingEvent.id == OutgoingDelivery.event_id)
             .where(OutgoingDelivery.endpoint_id == endpoint_id)
             .order_by(OutgoingDelivery.created_at.desc(), OutgoingDelivery.attempt.desc(),
                       OutgoingDelivery.id))
    query = where_state(query, OutgoingDelivery.status, status, DeliveryStatus, "status")
    rows, more = await fetch_page(session, query, page, limit, tuples=True)
    return [_delivery_out(d, t) for d, t in rows], more


async def redeliver(session: AsyncSession, delivery_id: uuid.UUID,
                    actor: Actor) -> DeliveryOut:
    """A new attempt of the same event to the same endpoint, due now (the same
    ``webhook-id``); one attempt, no retries after it."""
    found = (await session.execute(
        select(OutgoingDelivery, OutgoingEvent.type)
        .join(OutgoingEvent, OutgoingEvent.id == OutgoingDelivery.event_id)
        .where(OutgoingDelivery.id == delivery_id))).first()
    if found is None:
        raise NotFound(f"webhook delivery {delivery_id} not found", param="id")
    original, event_type = found
    endpoint = await _get(session, original.endpoint_id, lock=True)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it first", code="endpoint_disabled")
    last = await session.scalar(select(func.max(OutgoingDelivery.attempt)).where(
        OutgoingDelivery.event_id == original.event_id,
        OutgoingDelivery.endpoint_id == original.endpoint_id))
    now = utcnow()
    row = OutgoingDelivery(id=uuid.uuid4(), event_id=original.event_id,
                           endpoint_id=original.endpoint_id, attempt=(last or 0) + 1,
                           status="pending", next_attempt_at=now, manual=True, created_at=now)
    session.add(row)
    record(session, AuditLog, actor, "webhook_delivery.redelivered", "webhook_delivery",
           original.id, {"new_delivery_id": str(row.id), "event_id": str(row.event_id)})
    await session.flush()
    events.send_after_commit(session, [row.id])
    return _delivery_out(row, event_type)
