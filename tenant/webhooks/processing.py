"""Applying inbox events (T10): idempotent, order-independent, retried, dead-lettered.

An event is applied in one tenant transaction: its row is locked (a second worker waits,
then sees it processed), and the effects commit together with the mark that they were
applied. When applying fails, that transaction rolls back and the failed attempt is
counted in one of its own. Effects are idempotent by construction (unique provider ids,
status checks in the payment services), so a redelivery or a replay never applies twice.

Payment successes waiting in the inbox share transactions: the one that applies an event
also claims up to ``BATCH - 1`` payment successes still ``received`` (row-locked, skipping
rows another transaction holds) and settles them together (a few statements for all of
them), so a burst of webhooks costs one commit per batch, and the messages of the batched
events then find them processed with one read (shared by the messages a worker has in
hand at the time). Batching never makes an event fail that would have applied alone:

- a batched success whose payment attempt is not stored yet is left ``received`` for its
  own message (nothing is written for it: the attempt is looked up first);
- when settling the batch together fails, the transaction rolls back and the batch is
  applied again one event at a time, so that a failure names its event: that event's
  failed attempt is counted, and the message's own event is applied alone. A batch whose
  commit fails is applied one at a time too (and then the event alone).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.db import utcnow
from core.errors import ValidationError
from core.metrics import EVENTS_DEAD, EVENTS_FAILED, EVENTS_PROCESSED, PROCESSING_LAG
from core.money import parse_major
from core.runtime import Runtime
from core.sql import Sql, Transaction, orm, sql
from core.tenancy import TenantContext
from providers.base import EventType
from providers.redaction import redact
from tenant.payments import events as payments
from tenant.webhooks.models import EventStatus, WebhookEvent

log = logging.getLogger(__name__)
#: Early retries are fast (Dramatiq backoff from 250 ms), later ones slow: about a day.
MAX_ATTEMPTS = 16
#: Events applied in one transaction at most: the message's own and waiting payment
#: successes (each holds its order's row lock until the commit).
BATCH = 64
WORKER = Actor.system("worker")


class NotReady(Exception):
    """What the event depends on is not there yet (e.g. a refund before its payment).

    Raised before anything is written for the event.
    """


def _not_ready(exc: BaseException | None) -> bool:
    from tenant.webhooks.money_events import EventOutOfOrder

    return isinstance(exc, (NotReady, EventOutOfOrder))


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … capped at one hour (when the sweeper next re-enqueues it)."""
    return timedelta(seconds=min(3600, 2 ** max(0, attempts - 1)))


_STATUS = "SELECT status FROM webhook_events WHERE id = $1"
_STATUSES = "SELECT id, status FROM webhook_events WHERE id = ANY($1::uuid[])"
#: Claims an event: row-locked (a second worker waits here, then finds it done).
_CLAIM = """
    SELECT id, provider, normalized, attempts, received_at FROM webhook_events
    WHERE id = $1 AND status NOT IN ('processed', 'dead')
    FOR UPDATE
"""
#: Claims payment successes waiting beside the event $1 (the ones settled in plain SQL:
#: amount or currency known). Newest first: their own messages are the furthest back in
#: the queue, so they arrive once this batch has committed instead of waiting on it.
_CLAIM_BATCH = f"""
    SELECT id, provider, normalized, attempts, received_at FROM webhook_events
    WHERE status = 'received' AND event_type = 'payment.succeeded' AND id <> $1
      AND (normalized ->> 'amount' IS NOT NULL OR normalized ->> 'currency' IS NOT NULL)
    ORDER BY received_at DESC
    LIMIT {BATCH - 1}
    FOR UPDATE SKIP LOCKED
"""
#: The outcome of an attempt, counted: processed, or failed (dead) with the error.
_PROCESSED = """
    UPDATE webhook_events SET status = 'processed', attempts = attempts + 1, processed_at = $2,
                              last_error = NULL, next_attempt_at = NULL
    WHERE id = ANY($1::uuid[])
"""
_FAILED = """
    UPDATE webhook_events SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5
    WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class _Claimed:
    """An event row locked by the current transaction (the columns of ``_CLAIM``)."""

    id: uuid.UUID
    provider: str
    normalized: dict[str, Any]
    attempts: int
    received_at: datetime


class _NotApplied(Exception):
    """Rolls an event's transaction back; the failure is recorded in a transaction of its
    own (no savepoint on the way of every event that applies)."""


class _Mates(enum.Enum):
    """How the payment successes waiting beside an event are applied with it."""

    TOGETHER = "together"  # settled in one go
    ONE_BY_ONE = "one by one"  # so that a failure names its event
    NONE = "none"  # the event alone


class _BatchFailed(Exception):
    """A batched event (``event_id``; None: unknown) spoilt the shared transaction, which
    was rolled back."""

    def __init__(self, event_id: uuid.UUID | None) -> None:
        super().__init__(event_id)
        self.event_id = event_id


class _StatusReads:
    """Event statuses read outside a transaction, one query per tenant database at a time:
    the reads asked for while one is on its way share the next one. (A worker runs one
    actor per thread, and under load most of them only find their event applied.)"""

    def __init__(self) -> None:
        #: Per event loop and database: the (event id, future) pairs waiting for a read.
        self._queued: dict[tuple[int, str], list[tuple[uuid.UUID, asyncio.Future[Any]]]] = {}
        self._readers: dict[tuple[int, str], asyncio.Task[None]] = {}

    async def status(self, runtime: Runtime, db_url: str, event_id: uuid.UUID) -> str | None:
        loop = asyncio.get_running_loop()
        key = (id(loop), db_url)
        future = loop.create_future()
        self._queued.setdefault(key, []).append((event_id, future))
        if key not in self._readers:
            self._readers[key] = asyncio.create_task(self._read(runtime, key))
        return await future  # type: ignore[no-any-return]

    async def _read(self, runtime: Runtime, key: tuple[int, str]) -> None:
        try:
            while queued := self._queued.pop(key, None):
                try:
                    async with runtime.tenants.connect(key[1]) as connection:
                        raw = await connection.get_raw_connection()
                        rows = await Sql(raw.driver_connection).fetch(
                            _STATUSES, list({event_id for event_id, _ in queued}))
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    for _, future in queued:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                statuses = dict(rows)
                for event_id, future in queued:
                    if not future.done():
                        future.set_result(statuses.get(event_id))
        finally:  # no await since the queue was found empty: nobody is left waiting
            del self._readers[key]


_status_reads = _StatusReads()


async def process(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID) -> str:
    """Apply one event (with waiting payment successes); returns its resulting status."""
    status = await _status_reads.status(runtime, tenant.db_url, event_id)
    if status is None or status in (EventStatus.PROCESSED, EventStatus.DEAD):
        return status or "missing"  # applied before (or in a batch), or given up on
    for mates in (_Mates.TOGETHER, _Mates.ONE_BY_ONE):
        try:
            return await _attempt(runtime, tenant, event_id, mates)
        except _BatchFailed as failed:
            log.warning("event %s: its batch (mates %s) was rolled back: %s: %s", event_id,
                        mates.value, type(failed.__cause__).__name__,
                        redact(str(failed.__cause__)))
            if failed.event_id is not None:
                await _record_failure(runtime, tenant, failed.event_id, failed.__cause__)
                break
    return await _attempt(runtime, tenant, event_id, _Mates.NONE)


async def _attempt(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID,
                   mates: _Mates) -> str:
    """Apply the event, and the payment successes claimed beside it as ``mates`` says, in
    one transaction that marks them all processed."""
    applied: list[_Claimed] = []
    try:
        async with runtime.tenants.transaction(tenant.db_url) as db:
            statements = await sql(db)
            claimed = await statements.fetchrow(_CLAIM, event_id)
            if claimed is None:  # unknown, or processed (or dead) meanwhile
                return await statements.fetchval(_STATUS, event_id) or "missing"
            event = _Claimed(*claimed)
            try:
                await apply(runtime, db, tenant, event.provider, event.normalized)
            except Exception as exc:
                raise _NotApplied from exc
            applied.append(event)
            if mates is not _Mates.NONE:
                applied += await _apply_mates(runtime, db, tenant, event_id, mates)
            now = utcnow()
            await statements.execute(_PROCESSED, [e.id for e in applied], now)
    except _NotApplied as failed:
        return await _record_failure(runtime, tenant, event_id, failed.__cause__)
    except _BatchFailed:
        raise
    except Exception as exc:
        if len(applied) <= 1:
            raise
        raise _BatchFailed(None) from exc  # the shared commit failed: whose fault is unknown
    for event in applied:
        EVENTS_PROCESSED.labels(event.provider).inc()
        PROCESSING_LAG.observe(max(0.0, (now - event.received_at).total_seconds()))
    return EventStatus.PROCESSED


async def _apply_mates(runtime: Runtime, db: Transaction, tenant: TenantContext,
                       event_id: uuid.UUID, mates: _Mates) -> list[_Claimed]:
    """Claim and apply waiting payment successes; the ones applied."""
    claimed = [_Claimed(*row) for row in await (await sql(db)).fetch(_CLAIM_BATCH, event_id)]
    if mates is _Mates.TOGETHER:
        try:
            changed = await payments.mark_payments_succeeded(
                db, [_captured(e.provider, e.normalized) for e in claimed], actor=WORKER)
        except Exception as exc:
            raise _BatchFailed(None) from exc
        # None: the attempt is not stored yet; nothing written, left to its own message
        return [e for e, c in zip(claimed, changed, strict=True) if c is not None]
    applied = []
    for event in claimed:
        try:
            await apply(runtime, db, tenant, event.provider, event.normalized)
        except NotReady:
            continue  # nothing written for it: left to its own message
        except Exception as exc:
            raise _BatchFailed(event.id) from exc
        applied.append(event)
    return applied


async def _record_failure(runtime: Runtime, tenant: TenantContext, event_id: uuid.UUID,
                          exc: BaseException | None) -> str:
    """Count the failed attempt (its effects were rolled back): retried later, or dead."""
    async with runtime.tenants.transaction(tenant.db_url) as db:
        statements = await sql(db)
        claimed = await statements.fetchrow(_CLAIM, event_id)
        if claimed is None:  # another worker processed it in the meantime
            return await statements.fetchval(_STATUS, event_id) or "missing"
        event = _Claimed(*claimed)
        attempts = event.attempts + 1
        error = redact(f"{type(exc).__name__}: {exc}")[:1000]  # stored, logged, returned
        if attempts >= MAX_ATTEMPTS:
            status, next_attempt_at = EventStatus.DEAD, None
            EVENTS_DEAD.labels(event.provider).inc()
            log.error("event %s dead after %s attempts: %s", event_id, attempts, error)
        else:
            status, next_attempt_at = EventStatus.FAILED, utcnow() + backoff(attempts)
            EVENTS_FAILED.labels(event.provider).inc()
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
    from tenant.webhooks.money_events import apply_money_event

    kind = EventType(event["type"])
    payment_id = event.get("provider_payment_id") or event.get("reference")
    if kind is EventType.PAYMENT_SUCCEEDED:
        captured = _captured(provider, event)
        # a bank feed may not know the currency: read in the attempt's
        if captured.amount is None and captured.currency is None:
            attempt = await payments.find_attempt(await orm(db), provider, payment_id)
            if attempt is None:
                raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
            amount, currency = _received(event, attempt.currency)
            captured = replace(captured, amount=amount, currency=currency)
        changed, = await payments.mark_payments_succeeded(db, [captured], actor=WORKER)
        if changed is None:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
    elif kind is EventType.PAYMENT_FAILED:
        session = await orm(db)
        if await payments.find_attempt(session, provider, payment_id) is None:
            raise NotReady(f"no payment attempt {provider}:{payment_id} yet")
        data = event.get("data") or {}
        await payments.mark_payment_failed(
            session, provider=provider, provider_payment_id=payment_id,
            failure_code=data.get("failure_code"),
            failure_message=redact(data.get("failure_message")) or None,  # provider text
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


def _captured(provider: str, event: dict[str, Any]) -> payments.Captured:
    """What a normalized ``payment.succeeded`` event says was captured."""
    payment_id = event.get("provider_payment_id") or event.get("reference")
    return payments.Captured(provider, payment_id, event.get("amount"), event.get("currency"),
                             event.get("fee_amount"))


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
