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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.metrics import EVENTS_DEAD, EVENTS_FAILED, EVENTS_PROCESSED, PROCESSING_LAG
from core.runtime import Runtime
from core.sql import Sql, Transaction, sql
from core.tenancy import TenantContext
from providers.base import EventType
from providers.redaction import redact
from tenant.payments import events as payments
from tenant.webhooks.handlers import WORKER, Applied, Inbound, NotReady, captured_of, handler_for
from tenant.webhooks.models import EventStatus, WebhookEvent

log = logging.getLogger(__name__)
# Tries of an event before it is ``dead``: ``PAYMESH_WEBHOOK_MAX_ATTEMPTS`` (16: 1 s, 2 s,
# 4 s … apart, then hourly, about five hours in all; see :func:`backoff`).
#: Events applied in one transaction at most: the message's own and waiting payment
#: successes (each holds its order's row lock until the commit).
BATCH = 64


def _not_ready(exc: BaseException | None) -> bool:
    from tenant.webhooks.money_events import EventOutOfOrder

    return isinstance(exc, (NotReady, EventOutOfOrder))


def backoff(attempts: int, base: timedelta = timedelta(seconds=1)) -> timedelta:
    """The wait after the ``attempts``-th failed try: ``base``, twice that, four times …
    capped at one hour."""
    return min(timedelta(hours=1), base * 2 ** min(max(0, attempts - 1), 20))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message's processing did with its event."""

    status: str  # the event's status afterwards (``missing``: no such event)
    #: Set when this try failed and was counted: when the next one is due (None: dead,
    #: or not this try's failure to schedule).
    retry_at: datetime | None = None


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
    return (await process_event(runtime, tenant, event_id)).status


async def process_event(runtime: Runtime, tenant: TenantContext,
                        event_id: uuid.UUID) -> Outcome:
    """Try one event once (with waiting payment successes).

    The inbox row is the event's only retry clock: a failed try is counted in its
    ``attempts`` and the row says when the next one is due (``next_attempt_at``, from
    :func:`backoff`), until ``PAYMESH_WEBHOOK_MAX_ATTEMPTS`` tries, then ``dead``. The
    outcome's ``retry_at`` tells the caller (the actor) to send the next try then; an
    error that keeps a try from being recorded (the database unreachable) is raised,
    counts nothing, and is the message transport's to retry.
    """
    status = await _status_reads.status(runtime, tenant.db_url, event_id)
    if status is None or status in (EventStatus.PROCESSED, EventStatus.DEAD):
        return Outcome(status or "missing")  # applied before (or in a batch), or given up on
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
                   mates: _Mates) -> Outcome:
    """Apply the event, and the payment successes claimed beside it as ``mates`` says, in
    one transaction that marks them all processed."""
    applied: list[_Claimed] = []
    try:
        async with runtime.tenants.transaction(tenant.db_url) as db:
            statements = await sql(db)
            claimed = await statements.fetchrow(_CLAIM, event_id)
            if claimed is None:  # unknown, or processed (or dead) meanwhile
                return Outcome(await statements.fetchval(_STATUS, event_id) or "missing")
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
    return Outcome(EventStatus.PROCESSED)


async def _apply_mates(runtime: Runtime, db: Transaction, tenant: TenantContext,
                       event_id: uuid.UUID, mates: _Mates) -> list[_Claimed]:
    """Claim and apply waiting payment successes; the ones applied."""
    claimed = [_Claimed(*row) for row in await (await sql(db)).fetch(_CLAIM_BATCH, event_id)]
    if mates is _Mates.TOGETHER:
        try:
            changed = await payments.mark_payments_succeeded(
                db, [captured_of(e.provider, e.normalized) for e in claimed], actor=WORKER)
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
                          exc: BaseException | None) -> Outcome:
    """Count the failed try (its effects were rolled back): due again later, or dead."""
    settings = runtime.settings
    async with runtime.tenants.transaction(tenant.db_url) as db:
        statements = await sql(db)
        claimed = await statements.fetchrow(_CLAIM, event_id)
        if claimed is None:  # another worker processed it in the meantime
            return Outcome(await statements.fetchval(_STATUS, event_id) or "missing")
        event = _Claimed(*claimed)
        attempts = event.attempts + 1
        error = redact(f"{type(exc).__name__}: {exc}")[:1000]  # stored, logged, returned
        if attempts >= settings.webhook_max_attempts:
            status, next_attempt_at = EventStatus.DEAD, None
            EVENTS_DEAD.labels(event.provider).inc()
            log.error("event %s attempt %s/%s failed, dead: %s", event_id, attempts,
                      settings.webhook_max_attempts, error)
        else:
            wait = backoff(attempts, timedelta(milliseconds=settings.webhook_retry_base_ms))
            status, next_attempt_at = EventStatus.FAILED, utcnow() + wait
            EVENTS_FAILED.labels(event.provider).inc()
            # an event early for what it needs (a refund before its payment) is common
            log.log(logging.INFO if _not_ready(exc) else logging.WARNING,
                    "event %s attempt %s/%s failed (next in %s): %s", event_id, attempts,
                    settings.webhook_max_attempts, wait, error)
        await statements.execute(_FAILED, event_id, status.value, attempts, error,
                                 next_attempt_at)
    return Outcome(status, next_attempt_at)


async def apply(runtime: Runtime, db: AsyncSession | Transaction, tenant: TenantContext,
                provider: str, event: dict[str, Any]) -> Applied:
    """The effect of one normalized event: its type's registered handler
    (:mod:`tenant.webhooks.handlers`), or nothing for a type with no handler (``ignored``:
    stored for the record, marked processed). An unknown type string raises (counted)."""
    handler = handler_for(EventType(event["type"]))
    if handler is None:
        return Applied.NOTED
    return await handler(Inbound(runtime, db, tenant, provider, event))


async def due_events(session: AsyncSession, *, stuck_after: timedelta,
                     limit: int = 500) -> list[uuid.UUID]:
    """Events the sweeper should (re-)enqueue: received ``stuck_after`` ago and still
    waiting, or failed and overdue by as long (the try due was sent when it failed; the
    sweeper only makes up for a message that was lost)."""
    due = utcnow() - stuck_after
    query = (
        select(WebhookEvent.id)
        .where(((WebhookEvent.status == EventStatus.RECEIVED)
                & (WebhookEvent.received_at <= due))
               | ((WebhookEvent.status == EventStatus.FAILED)
                  & (WebhookEvent.next_attempt_at <= due)))
        .order_by(WebhookEvent.received_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
