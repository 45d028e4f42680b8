"""Webhook ingest (T9): verify, store raw in the inbox, acknowledge; and inbox queries.

Verification happens before anything is stored: a forged, stale or malformed request
leaves only a log line and a metric. A verified event is committed before the 200, and
only then handed to the workers; if the broker is down the event waits in the inbox for
the sweeper.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page
from core.errors import NotFound, PaymeshError, ValidationError
from core.metrics import WEBHOOKS_DUPLICATE, WEBHOOKS_RECEIVED, WEBHOOKS_REJECTED
from core.runtime import Runtime
from core.tenancy import TenantContext
from providers.base import MalformedWebhook, NormalizedEvent, WebhookRequest
from providers.base import WebhookVerificationError
from providers.registry import PROVIDERS
from tenant.audit.models import AuditLog
from tenant.provider_configs.service import webhook_provider
from tenant.webhooks.inbox import PROCESS_ACTOR, InboxRow, inbox_writer
from tenant.webhooks.models import EventStatus, WebhookEvent

log = logging.getLogger(__name__)
_JSON = msgspec.json.Encoder()
#: The inbox column's width; a longer id is refused whole, never cut (two events sharing
#: the first 255 characters are two events).
MAX_EVENT_ID = 255
#: Control characters (NUL included) and lone surrogates: no provider id has them, and
#: Postgres text cannot hold NUL or a surrogate.
_BAD_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: What a provider's parser raises on signed input it cannot read (an out-of-range
#: timestamp, an absurd number, JSON nested too deep): malformed, not a server error.
_PARSE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, OSError,
                 RecursionError)


class WebhookRejected(PaymeshError):
    status_code = 400
    type = "invalid_request_error"


async def ingest(runtime: Runtime, tenant: TenantContext, provider_code: str,
                 headers: dict[str, str], body: bytes) -> tuple[uuid.UUID | None, bool]:
    """Store a verified event; returns (event id, newly stored).

    Stored through the inbox writer (group commit); committed before this returns.
    """
    request = WebhookRequest(headers={k.lower(): v for k, v in headers.items()}, body=body)
    event = await _verified_event(runtime, tenant, provider_code, request)
    row = InboxRow(provider=provider_code, provider_event_id=event.provider_event_id,
                   event_type=event.type.value, body=body, normalized=_normalized(event))
    event_id = await inbox_writer(runtime).store(tenant, row)
    if event_id is None:
        WEBHOOKS_DUPLICATE.labels(provider_code).inc()
        return None, False
    WEBHOOKS_RECEIVED.labels(provider_code).inc()
    return event_id, True


async def _verified_event(runtime: Runtime, tenant: TenantContext, provider_code: str,
                          request: WebhookRequest) -> NormalizedEvent:
    """The request's normalized event, or a rejection (a log line and a metric only)."""
    try:
        if provider_code not in PROVIDERS:  # (a NUL in the path must not reach the database)
            raise NotFound(f"provider {provider_code[:40]!r} is not configured for this tenant")
        provider = await webhook_provider(runtime, tenant, provider_code)
    except NotFound:
        WEBHOOKS_REJECTED.labels(provider_code, "not_configured").inc()
        raise
    try:
        try:
            provider.verify_webhook(request)
            event = provider.parse_webhook(request)
        except _PARSE_ERRORS as exc:
            log.warning("webhook parser refused a body: tenant=%s provider=%s error=%r",
                        tenant.slug, provider_code, exc)
            raise MalformedWebhook(f"{provider_code} webhook has a value out of range or of "
                                   "the wrong kind") from exc
        _check_event_id(event.provider_event_id)
        return event
    except WebhookVerificationError as exc:
        WEBHOOKS_REJECTED.labels(provider_code, exc.code).inc()
        log.warning("webhook rejected: tenant=%s provider=%s reason=%s", tenant.slug,
                    provider_code, exc.code)
        raise WebhookRejected(exc.message, code=exc.code) from exc


def _check_event_id(event_id: Any) -> None:
    """The inbox's dedupe key is stored exactly as the provider sent it, or refused."""
    if not isinstance(event_id, str) or not event_id:
        raise MalformedWebhook("the webhook event has no id")
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedWebhook(f"the webhook event id is longer than {MAX_EVENT_ID} characters")
    if _BAD_ID_CHARS.search(event_id):
        raise MalformedWebhook("the webhook event id contains a control character")


def _normalized(event: NormalizedEvent) -> str:
    """The normalized event as JSON text for the ``jsonb`` column.

    Postgres ``jsonb`` refuses ``\\u0000`` and UTF-8 cannot carry a lone surrogate, so such
    characters in the event's texts (a failure message, a reference) are stored as U+FFFD;
    the raw body is kept byte for byte beside it.
    """
    try:
        encoded = _JSON.encode(event)
        if b"\\u0000" not in encoded:
            return encoded.decode()
    except UnicodeEncodeError:
        pass
    return _JSON.encode(_storable(msgspec.to_builtins(event))).decode()


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


async def list_events(session: AsyncSession, *, status: str | None, provider: str | None,
                      created_from: datetime | None, created_to: datetime | None,
                      page: int, limit: int) -> tuple[list[WebhookEvent], bool]:
    if status is not None and status not in {s.value for s in EventStatus}:
        raise ValidationError(f"status must be one of {[s.value for s in EventStatus]}",
                              param="status")
    query = select(WebhookEvent).order_by(WebhookEvent.received_at.desc(), WebhookEvent.id)
    if status:
        query = query.where(WebhookEvent.status == status)
    if provider:
        query = query.where(WebhookEvent.provider == provider)
    if created_from:
        query = query.where(WebhookEvent.received_at >= created_from)
    if created_to:
        query = query.where(WebhookEvent.received_at < created_to)
    rows, more = await fetch_page(session, query, page, limit)
    return rows, more


async def mark_for_replay(session: AsyncSession, event_id: uuid.UUID, actor: Actor) -> WebhookEvent:
    """Put an event back in the queue; its effects are idempotent, so replay is safe."""
    row = (await session.scalars(
        select(WebhookEvent).where(WebhookEvent.id == event_id).with_for_update())).first()
    if row is None:
        raise NotFound("webhook event not found")
    record(session, AuditLog, actor, "webhook_event.replayed", "webhook_event", row.id,
           {"from_status": row.status, "attempts": row.attempts})
    row.status, row.attempts, row.last_error, row.next_attempt_at = (
        EventStatus.RECEIVED, 0, None, None)
    return row


async def replay(runtime: Runtime, tenant: TenantContext, actor: Actor, *,
                 event_ids: Sequence[uuid.UUID] = (), status: str | None = None,
                 ) -> tuple[list[dict[str, object]], bool]:
    """Put events back in the queue — these ``event_ids`` (unknown ones are skipped), or
    else every event in ``status`` — in one transaction, then enqueue them once it has
    committed. The HTTP replay route and ``paymesh webhooks replay`` both come here.
    Returns the replayed events (:func:`event_out`) and whether the broker took them
    (if not, the sweeper enqueues them: they are ``received`` again)."""
    query = select(WebhookEvent.id).order_by(WebhookEvent.id)
    if event_ids:
        query = query.where(WebhookEvent.id.in_(list(event_ids)))
    else:
        query = query.where(WebhookEvent.status == (status or EventStatus.DEAD))
    async with runtime.tenant_session(tenant.db_url) as session:
        ids = list((await session.scalars(query)).all())
        events = [event_out(await mark_for_replay(session, event_id, actor)) for event_id in ids]
    queued = await runtime.enqueue_many(PROCESS_ACTOR, [(tenant.slug, str(i)) for i in ids])
    return events, queued


def event_out(row: WebhookEvent) -> dict[str, object]:
    return {
        "id": str(row.id), "provider": row.provider, "provider_event_id": row.provider_event_id,
        "type": row.event_type, "status": row.status, "attempts": row.attempts,
        "last_error": row.last_error, "received_at": row.received_at,
        "next_attempt_at": row.next_attempt_at, "processed_at": row.processed_at,
        "normalized": row.normalized,
    }
