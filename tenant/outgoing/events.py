"""The events outbox: each event is written in the transaction of the change it tells
about, with one delivery row per enabled endpoint that wants it, in ONE statement.

An event's ``data`` is the object as the API shows it, built in SQL from the rows the
transaction just wrote (an effect handles a whole batch of movements at once), so a
batch costs one statement however many events it makes. Nothing is written when no
enabled endpoint wants the event type (an event nobody listens to needs no outbox row).

Events are deduplicated by a business key (``order.paid:<order id>``): a replayed
movement writes nothing. A rolled-back change takes its events and deliveries with it.

Once the transaction commits, the new deliveries are handed to the workers
(``after_commit_awaited``) when the code knows which tenant it works for
(:func:`core.tenancy.working_for`); if it does not, or the broker is away, or the process
dies in between, the scheduler's sweep (:func:`tenant.outgoing.delivery.due`) sends them.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import actors
from core.db import after_commit_awaited, utcnow
from core.sql import Transaction, json_param, sql
from core.tenancy import working_for

log = logging.getLogger(__name__)
Db = AsyncSession | Transaction
_PENDING_KEY = "paymesh.outgoing.deliveries"


class EventType(enum.StrEnum):
    ORDER_CREATED = "order.created"
    ORDER_PAID = "order.paid"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_PARTIALLY_REFUNDED = "order.partially_refunded"
    ORDER_REFUNDED = "order.refunded"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"
    COMMISSION_APPROVED = "commission.approved"
    CONNECT_ACCOUNT_UPDATED = "connect.account.updated"


# ----------------------------------------------------------------------------- objects

#: An order as ``GET /v1/orders/{id}`` shows it (``tenant.orders.service.to_out``);
#: ``$2`` is the pay-link base (``{public url}/pay/{tenant}``, null when unknown) and
#: ``$3`` the manual transitions by ``status/fulfillment`` (:func:`_order_args`).
ORDER_JSON = """jsonb_build_object(
    'id', o.id::text, 'number', o.number, 'status', o.status,
    'payment_status', o.payment_status, 'fulfillment', o.fulfillment,
    'currency', o.currency, 'customer_email', o.customer_email, 'subtotal', o.subtotal,
    'discount', o.discount, 'tax', o.tax, 'tax_rate', trim_scale(o.tax_rate)::text,
    'total', o.total, 'original_amount', o.original_amount,
    'pay_url', $2::text || '/' || o.pay_token,
    'items', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'id', i.id::text, 'product_id', i.product_id::text,
                  'description', i.description, 'kind', i.kind, 'quantity', i.quantity,
                  'unit_amount', i.unit_amount, 'amount', i.amount) ORDER BY i.position),
                  '[]'::jsonb)
              FROM order_items i WHERE i.order_id = o.id),
    'coupon_code', o.coupon_code, 'referral_code', o.referral_code,
    'metadata', o.metadata, 'flags', o.flags,
    'allowed_transitions', coalesce($3::jsonb -> (o.status || '/' || o.fulfillment),
                                    '[]'::jsonb),
    'status_reason', o.status_reason, 'paid_at', o.paid_at,
    'cancelled_at', o.cancelled_at, 'created_at', o.created_at,
    'updated_at', o.updated_at, 'payment_options', NULL,
    'amount_refunded', o.amount_refunded)"""

#: A refund as ``GET /v1/refunds/{id}`` shows it.
REFUND_JSON = """jsonb_build_object(
    'id', r.id::text, 'order_id', r.order_id::text, 'payment_id', r.payment_id::text,
    'provider', r.provider, 'amount', r.amount, 'currency', r.currency,
    'status', r.status, 'reason', r.reason, 'keep_access', r.keep_access,
    'restock', r.restock, 'provider_refund_id', r.provider_refund_id,
    'failure_reason', r.failure_reason, 'created_at', r.created_at,
    'completed_at', r.completed_at)"""

#: A dispute as ``GET /v1/disputes/{id}`` shows it.
DISPUTE_JSON = """jsonb_build_object(
    'id', d.id::text, 'order_id', d.order_id::text, 'payment_id', d.payment_id::text,
    'provider', d.provider, 'provider_dispute_id', d.provider_dispute_id,
    'amount', d.amount, 'currency', d.currency, 'reason', d.reason,
    'status', d.status, 'evidence_due_by', d.evidence_due_by,
    'opened_at', d.opened_at, 'closed_at', d.closed_at, 'created_at', d.created_at)"""

#: ``{source}`` yields ``(type, dedupe_key, data)`` rows; ``$1`` is now. Events go to the
#: outbox only where an enabled endpoint wants them; each new one gets a first delivery
#: per such endpoint; the new deliveries' ids come back.
_WRITE = """
WITH src(type, dedupe_key, data) AS ({source}),
ev AS (
    INSERT INTO outgoing_events (id, type, created_at, data, dedupe_key)
    SELECT gen_random_uuid(), s.type, $1, s.data, s.dedupe_key FROM src s
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints e
                  WHERE e.enabled AND (cardinality(e.events) = 0 OR s.type = ANY(e.events)))
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, type)
INSERT INTO outgoing_deliveries (id, event_id, endpoint_id, attempt, status,
                                 next_attempt_at, manual, created_at)
SELECT gen_random_uuid(), ev.id, e.id, 1, 'pending', $1, false, $1
FROM ev JOIN webhook_endpoints e
     ON e.enabled AND (cardinality(e.events) = 0 OR ev.type = ANY(e.events))
RETURNING id
"""


@lru_cache(maxsize=1)
def _transitions() -> str:
    from tenant.orders.states import Fulfillment, OrderStatus, allowed_targets

    return json_param({f"{s.value}/{f.value}": allowed_targets(s, f, manual_only=True)
                       for s in OrderStatus for f in Fulfillment})


def _pay_base() -> str | None:
    from core.settings import get_settings

    tenant = working_for()
    return f"{get_settings().public_url}/pay/{tenant.slug}" if tenant is not None else None


def _order_args() -> tuple[str | None, str]:
    """``$2`` and ``$3`` of a source that uses :data:`ORDER_JSON`."""
    return _pay_base(), _transitions()


async def _write(db: Db, source: str, *args: Any, now: datetime | None = None) -> int:
    """Run one write (``source`` uses ``$2…`` for ``args``); returns deliveries made."""
    rows = await (await sql(db)).fetch(_WRITE.format(source=source), now or utcnow(), *args)
    if rows:
        send_after_commit(db, [row["id"] for row in rows])
    return len(rows)


def send_after_commit(db: Db, delivery_ids: list[uuid.UUID]) -> None:
    """Hand the deliveries to the workers once the transaction has committed."""
    tenant = working_for()
    if tenant is None:
        return  # the scheduler's sweep sends them
    pending = db.info.get(_PENDING_KEY)
    if pending is None:
        pending = db.info[_PENDING_KEY] = []
        slug = tenant.slug

        async def send() -> None:
            from core.runtime import get_runtime

            ids = db.info.pop(_PENDING_KEY, pending)
            if not await get_runtime().enqueue_many(
                    actors.DELIVER_OUTGOING_WEBHOOK, [(slug, str(i)) for i in ids]):
                log.warning("%d outgoing deliveries not enqueued; left for the sweeper",
                            len(ids))

        after_commit_awaited(db, send)
    pending.extend(delivery_ids)


# ----------------------------------------------------------------------------- writers


async def orders(db: Db, kind: EventType, order_ids: Sequence[uuid.UUID],
                 keys: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    """``kind`` for each order (dedupe key ``kind:<order id>`` unless ``keys`` says)."""
    if not order_ids:
        return 0
    keys = list(keys) if keys is not None else [f"{kind.value}:{i}" for i in order_ids]
    return await _write(db, f"""
        SELECT $4::text, x.key, {ORDER_JSON}
        FROM unnest($5::uuid[], $6::text[]) AS x(id, key) JOIN orders o ON o.id = x.id""",
                        *_order_args(), kind.value, list(order_ids), keys, now=now)


async def refunds(db: Db, kind: EventType, refund_ids: Sequence[uuid.UUID], *,
                  now: datetime | None = None) -> int:
    if not refund_ids:
        return 0
    return await _write(db, f"""
        SELECT $2::text, $2::text || ':' || r.id::text, {REFUND_JSON}
        FROM refunds r WHERE r.id = ANY($3::uuid[])""", kind.value, list(refund_ids), now=now)


async def refunds_and_orders(db: Db, refund_ids: Sequence[uuid.UUID],
                             order_ids: Sequence[uuid.UUID], full: Sequence[bool], *,
                             now: datetime | None = None) -> int:
    """``refund.succeeded`` per refund and ``order.refunded`` (nothing left to refund) or
    ``order.partially_refunded`` for its order, keyed by the refund: one statement."""
    if not refund_ids:
        return 0
    return await _write(db, f"""
        SELECT 'refund.succeeded', 'refund.succeeded:' || r.id::text, {REFUND_JSON}
        FROM refunds r WHERE r.id = ANY($4::uuid[])
        UNION ALL
        SELECT k.type, k.type || ':' || x.refund_id::text, {ORDER_JSON}
        FROM unnest($4::uuid[], $5::uuid[], $6::bool[]) AS x(refund_id, order_id, is_full)
        CROSS JOIN LATERAL (SELECT CASE WHEN x.is_full THEN 'order.refunded'
                                        ELSE 'order.partially_refunded' END AS type) k
        JOIN orders o ON o.id = x.order_id""",
                        *_order_args(), list(refund_ids), list(order_ids), list(full),
                        now=now)


async def disputes(db: Db, kind: EventType, dispute_ids: Sequence[uuid.UUID], *,
                   now: datetime | None = None) -> int:
    if not dispute_ids:
        return 0
    return await _write(db, f"""
        SELECT $2::text, $2::text || ':' || d.id::text, {DISPUTE_JSON}
        FROM disputes d WHERE d.id = ANY($3::uuid[])""", kind.value, list(dispute_ids),
                        now=now)


async def objects(db: Db, kind: EventType, items: Sequence[tuple[str, dict[str, Any]]], *,
                  now: datetime | None = None) -> int:
    """Events whose ``data`` the caller built: ``(dedupe key, data)`` pairs (commissions,
    connected accounts: their packages build their own API objects)."""
    if not items:
        return 0
    return await _write(db, """
        SELECT $2::text, x.key, CAST(x.data AS jsonb)
        FROM unnest($3::text[], $4::text[]) AS x(key, data)""",
                        kind.value, [k for k, _ in items], [json_param(d) for _, d in items],
                        now=now)
