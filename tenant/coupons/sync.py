"""The provider-discount sync (SPEC 3a, **Provider sync**; the behaviour is explained in
``docs/coupons.md``).

When an order whose coupon links a provider-side discount is paid through another
provider, the discount's cap at its provider is brought in line: the linked discount is
ONE budget shared by the provider's own buyers and Paymesh's buyers who paid elsewhere.

Exactly once per order, without ever decrementing twice:

- the budget is the provider's cap read by the coupon's first sync
  (``coupons.provider_cap_baseline``); the n-th redemption given a sync target brings the
  cap to ``baseline - n`` (``coupon_redemptions.sync_target``): an absolute value, never
  "one less than what it is now";
- the target (and the cap read) are committed *before* the provider is called (the
  intent), the outcome after it; a try that died in between is resolved on the next one by
  re-reading the discount: a cap at or below the target was written already and is left
  alone. Syncs of one coupon may run in any order and at once: each only ever lowers the
  cap to its own target;
- a try holds its redemption for :data:`LEASE` (``sync_claimed_until``): a duplicate
  message finds it held or done and does nothing; a crashed try's hold lapses and the
  sweeper sends it again.

Decision on the discount as read (:func:`decide`): gone (404) → ``already_deleted``
(``deleted`` when this redemption's own try deleted it before dying); unlimited →
``skipped_unlimited``; cap at or below the target → nothing to write (``decremented``);
target ≤ 0 (the cap was ≤ 1) → delete (``deleted``); else set the cap to the target
(``decremented``). A failed try is retried after ``base × 2^(attempts-1)``
(``PAYMESH_COUPON_SYNC_RETRY_BASE_MS``, 2 s); after ``PAYMESH_COUPON_SYNC_MAX_ATTEMPTS``
tries the sync is ``failed`` and :func:`resync` replays it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.actors import SYNC_COUPON_DISCOUNT
from core.audit import record
from core.db import utcnow
from core.runtime import Runtime
from core.sql import sql
from core.tenancy import TenantContext
from providers.base import PaymentProvider, ProviderDiscount, ProviderError
from tenant.audit.models import AuditLog
from tenant.coupons.states import SyncAction, SyncStatus

log = logging.getLogger(__name__)

#: How long a try holds its redemption (well above a provider call's timeouts).
LEASE = timedelta(seconds=120)

GatewayFor = Callable[[Runtime, Any, TenantContext, str], Awaitable[PaymentProvider]]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the discount as read: the action to record and the write, if any
    (``update`` to ``value``, or ``delete``)."""

    action: SyncAction
    write: str | None = None
    value: int | None = None


def decide(current: ProviderDiscount | None, target: int | None, *,
           attempted_delete: bool = False) -> Plan:
    """The decision for a redemption whose intent is ``target`` (``None``: no intent
    recorded yet, the discount was gone or unlimited when first read).

    ``attempted_delete``: an earlier try of this redemption set out to delete the
    discount, so its absence now is that try's work.
    """
    if current is None:
        return Plan(SyncAction.DELETED if attempted_delete else SyncAction.ALREADY_DELETED)
    if current.max_redemptions is None or target is None:
        return Plan(SyncAction.SKIPPED_UNLIMITED)
    if target <= 0:
        return Plan(SyncAction.DELETED, "delete")
    if current.max_redemptions <= target:
        return Plan(SyncAction.DECREMENTED)  # written already (by this try's earlier run)
    return Plan(SyncAction.DECREMENTED, "update", target)


def backoff(attempts: int, base_ms: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: base, twice that, … (≤ 1 hour)."""
    return min(timedelta(hours=1),
               timedelta(milliseconds=base_ms) * 2 ** min(max(0, attempts - 1), 20))


_CLAIM = """
    UPDATE coupon_redemptions r
    SET sync_attempts = r.sync_attempts + 1, sync_claimed_until = $2, updated_at = $3
    FROM coupons c
    WHERE r.order_id = $1 AND r.sync_status = 'pending' AND c.id = r.coupon_id
      AND (r.sync_claimed_until IS NULL OR r.sync_claimed_until <= $3)
    RETURNING r.id, r.coupon_id, r.sync_attempts, r.sync_target, r.sync_seen,
              c.provider_discount_provider AS provider, c.provider_discount_id AS discount_id
"""

#: The intent: the budget (first read), this redemption's rank in it, its target.
_INTENT = """
    WITH c AS (
        UPDATE coupons SET provider_cap_baseline = COALESCE(provider_cap_baseline, $3),
                           provider_synced = provider_synced + 1
        WHERE id = $2
        RETURNING provider_cap_baseline - provider_synced AS target
    )
    UPDATE coupon_redemptions r SET sync_target = c.target, sync_seen = $3
    FROM c WHERE r.id = $1 AND r.sync_target IS NULL
    RETURNING r.sync_target
"""

_DONE = """
    UPDATE coupon_redemptions
    SET sync_status = 'done', sync_action = $2, synced_at = $3, sync_last_error = NULL,
        sync_claimed_until = NULL, sync_next_at = NULL, updated_at = $3
    WHERE id = $1 AND sync_status = 'pending'
"""

_FAILED = """
    UPDATE coupon_redemptions
    SET sync_status = $2, sync_last_error = $3, sync_next_at = $4,
        sync_claimed_until = NULL, updated_at = $5
    WHERE id = $1 AND sync_status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try did: the sync's status after it, and when the next try is due."""

    status: str
    action: str | None = None
    retry_at: datetime | None = None


async def _default_gateway(runtime: Runtime, session: Any, tenant: TenantContext,
                           code: str) -> PaymentProvider:
    from tenant.provider_configs.service import provider_for

    return await provider_for(runtime, session, tenant, code)


async def run(runtime: Runtime, tenant: TenantContext, order_id: uuid.UUID, *,
              gateway_for: GatewayFor = _default_gateway,
              now: datetime | None = None) -> Outcome:
    """One try of the sync of ``order_id``'s redemption (the actor's work)."""
    now = now or utcnow()
    async with runtime.tenant_session(tenant.db_url) as session:
        claimed = await (await sql(session)).fetchrow(_CLAIM, order_id, now + LEASE, now)
    if claimed is None:
        return Outcome("skipped")  # done, failed, not due for a sync, or held by a try
    redemption_id = claimed["id"]
    try:
        async with runtime.tenant_session(tenant.db_url) as session:
            gateway = await gateway_for(runtime, session, tenant, claimed["provider"])
        current = await gateway.get_discount(claimed["discount_id"])
        target = claimed["sync_target"]
        if target is None and current is not None and current.max_redemptions is not None:
            async with runtime.tenant_session(tenant.db_url) as session:
                target = await (await sql(session)).fetchval(
                    _INTENT, redemption_id, claimed["coupon_id"], current.max_redemptions)
        attempted_delete = claimed["sync_target"] is not None and claimed["sync_target"] <= 0
        plan = decide(current, target, attempted_delete=attempted_delete)
        if plan.write == "update":
            assert plan.value is not None
            await gateway.update_discount_max_redemptions(claimed["discount_id"], plan.value)
        elif plan.write == "delete" and not await gateway.delete_discount(
                claimed["discount_id"]):
            plan = Plan(SyncAction.DELETED if attempted_delete else SyncAction.ALREADY_DELETED)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and retried
        return await _failed(runtime, tenant, redemption_id, claimed["sync_attempts"], exc,
                             max(now, utcnow()))
    async with runtime.tenant_session(tenant.db_url) as session:
        await (await sql(session)).execute(_DONE, redemption_id, plan.action.value, utcnow())
    return Outcome(SyncStatus.DONE.value, plan.action.value)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ProviderError):
        return f"{exc.code}: {exc.message}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


async def _failed(runtime: Runtime, tenant: TenantContext, redemption_id: uuid.UUID,
                  attempts: int, exc: Exception, now: datetime) -> Outcome:
    settings = runtime.settings
    last = attempts >= settings.coupon_sync_max_attempts
    retry_at = None if last else now + backoff(attempts, settings.coupon_sync_retry_base_ms)
    status = SyncStatus.FAILED if last else SyncStatus.PENDING
    log.warning("coupon sync of redemption %s failed (try %d): %s", redemption_id, attempts,
                _describe(exc))
    async with runtime.tenant_session(tenant.db_url) as session:
        await (await sql(session)).execute(_FAILED, redemption_id, status.value,
                                           _describe(exc), retry_at, now)
    return Outcome(status.value, retry_at=retry_at)


_DUE = """
    SELECT order_id FROM coupon_redemptions
    WHERE sync_status = 'pending' AND sync_next_at <= $1
      AND (sync_claimed_until IS NULL OR sync_claimed_until <= $1)
    ORDER BY sync_next_at LIMIT $2
"""


async def due(session: Any, now: datetime, *, batch: int = 500) -> list[uuid.UUID]:
    """Syncs the sweeper should send: due and not held by a live try."""
    return [r["order_id"] for r in await (await sql(session)).fetch(_DUE, now, batch)]


_RESYNC = """
    UPDATE coupon_redemptions
    SET sync_status = 'pending', sync_attempts = 0, sync_next_at = $2,
        sync_last_error = NULL, sync_claimed_until = NULL, updated_at = $2
    WHERE sync_status = 'failed' AND ($1::uuid[] IS NULL OR order_id = ANY($1::uuid[]))
      AND ($3::uuid IS NULL OR coupon_id = $3)
    RETURNING order_id
"""


async def resync(session: Any, *, order_ids: list[uuid.UUID] | None = None,
                 coupon_id: uuid.UUID | None = None,
                 now: datetime | None = None) -> list[uuid.UUID]:
    """Failed syncs (all, or these orders' / this coupon's) made ``pending`` again, with
    fresh tries. Their recorded intent stays: a replay resolves against it, so it never
    lowers the cap twice."""
    rows = await (await sql(session)).fetch(_RESYNC, order_ids, now or utcnow(), coupon_id)
    return [r["order_id"] for r in rows]


async def replay(runtime: Runtime, tenant: TenantContext, actor: Any, *,
                 coupon_id: uuid.UUID | None = None,
                 order_ids: list[uuid.UUID] | None = None) -> tuple[list[uuid.UUID], bool]:
    """:func:`resync` in one transaction (audited), then the syncs sent to the worker once
    it has committed. The HTTP route and ``paymesh coupons resync`` both come here.
    Returns the orders replayed and whether the broker took them (if not, the sweeper
    sends them: they are ``pending`` and due)."""
    async with runtime.tenant_session(tenant.db_url) as session:
        ids = await resync(session, order_ids=order_ids, coupon_id=coupon_id)
        for order_id in ids:
            record(session, AuditLog, actor, "coupon.sync_replayed", "order", order_id, {})
    queued = await runtime.enqueue_many(SYNC_COUPON_DISCOUNT,
                                        [(tenant.slug, str(i)) for i in ids])
    return ids, queued
