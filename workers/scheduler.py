"""``paymesh scheduler``: periodic jobs, one active instance at a time.

Leadership is a Redis lock (``SET NX PX`` renewed by its holder), so a second scheduler
waits as a hot standby and never double-runs. Each job's last run time is kept in Redis,
so a failover does not re-run a job early. Jobs visit tenants one at a time through the
tenant engine registry (its connection cap holds) and one failing tenant does not stop
the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import actors
from core.db import utcnow
from core.redis import get_redis
from core.runtime import Runtime
from core.tenancy import TenantContext, done_working, work_for
from owner.tenants.models import Tenant
from owner.tenants.service import context_of

log = logging.getLogger(__name__)
LEADER_KEY = "paymesh:scheduler:leader"
LEASE_MS = 30_000

TenantJob = Callable[[Runtime, TenantContext], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: int
    run: TenantJob
    #: False: ``run`` is called once with ``tenant=None`` (platform-wide work).
    per_tenant: bool = True


async def sweep_inbox(runtime: Runtime, tenant: TenantContext) -> int:
    """Re-enqueue events stuck in ``received``, and failed events whose next try is overdue
    (a lost message: the actor sends each try when the previous one fails)."""
    from tenant.webhooks.processing import due_events

    async with runtime.tenant_session(tenant.db_url) as session:
        ids = await due_events(
            session, stuck_after=timedelta(seconds=runtime.settings.sweep_stuck_after_seconds))
    sent = 0
    for event_id in ids:
        sent += await runtime.enqueue(actors.PROCESS_WEBHOOK_EVENT, tenant.slug, str(event_id))
    return sent


async def deliver_notifications(runtime: Runtime, tenant: TenantContext) -> int:
    from tenant.notifications.service import due

    async with runtime.tenant_session(tenant.db_url) as session:
        ids = await due(session)
    sent = 0
    for notification_id in ids:
        sent += await runtime.enqueue(actors.DELIVER_NOTIFICATION, tenant.slug,
                                      str(notification_id))
    return sent


async def deliver_outgoing_webhooks(runtime: Runtime, tenant: TenantContext) -> int:
    """Outgoing deliveries whose message was lost (a crash between the commit that wrote
    them and their enqueue, a lost retry message): sent again once overdue."""
    from tenant.outgoing.delivery import due

    ids = await due(runtime, tenant,
                    older_than_seconds=runtime.settings.sweep_stuck_after_seconds)
    if ids and await runtime.enqueue_many(actors.DELIVER_OUTGOING_WEBHOOK,
                                          [(tenant.slug, str(i)) for i in ids]):
        return len(ids)
    return 0


async def expire_reservations(runtime: Runtime, tenant: TenantContext) -> int:
    from tenant.orders.reservations import expire_reservations as expire

    async with runtime.tenant_session(tenant.db_url) as session:
        return int(await expire(session, utcnow()) or 0)


async def cancel_unpaid(runtime: Runtime, tenant: TenantContext) -> int:
    from tenant.orders.service import cancel_unpaid_orders

    async with runtime.tenant_session(tenant.db_url) as session:
        return int(await cancel_unpaid_orders(session, utcnow()) or 0)


async def sync_coupon_discounts(runtime: Runtime, tenant: TenantContext) -> int:
    """Send the provider-discount syncs that are due (new, retries whose time has come,
    tries that died holding their redemption)."""
    from tenant.coupons.sync import due

    async with runtime.tenant_session(tenant.db_url) as session:
        ids = await due(session, utcnow())
    if not ids:
        return 0
    sent = await runtime.enqueue_many(actors.SYNC_COUPON_DISCOUNT,
                                      [(tenant.slug, str(i)) for i in ids])
    return len(ids) if sent else 0


async def approve_commissions(runtime: Runtime, tenant: TenantContext) -> int:
    """Commissions whose hold (``commission_hold_days``) is over: ``pending → approved``."""
    from tenant.referrals.commissions import approve_due

    async with runtime.tenant_session(tenant.db_url) as session:
        return len(await approve_due(session, utcnow()))


async def purge_idempotency_keys(runtime: Runtime, tenant: TenantContext) -> int:
    """Idempotency keys are kept at least 24 h; older ones go."""
    from core.idempotency import purge_expired

    async with runtime.tenant_session(tenant.db_url) as session:
        return int(await purge_expired(session, utcnow()) or 0)


async def reconcile(runtime: Runtime, tenant: TenantContext) -> int:
    from tenant.payments.reconcile import reconcile_pending

    return await reconcile_pending(runtime, tenant)


async def resend_sandbox_webhooks(runtime: Runtime, tenant: TenantContext | None) -> int:
    """The sandbox gateway's own sweeper: deliveries whose dispatch was lost."""
    from providers.sandbox.store import pending_deliveries

    sent = 0
    for delivery_id in await pending_deliveries(older_than_seconds=60):
        sent += await runtime.enqueue(actors.DELIVER_SANDBOX_WEBHOOK, delivery_id)
    return sent


async def refresh_fx_rates(runtime: Runtime, tenant: TenantContext | None) -> int:
    """Every rate from the FX rate API, stored with its history (O6). A failing API is
    logged and counted by :func:`owner.fx.service.refresh`, not raised: 0 rates."""
    from owner.fx.service import refresh

    return await refresh(runtime)


#: Tries of one tenant's roll-up: a deadlock or serialization failure (none is expected:
#: it waits only on another roll-up) is worth another go before the next hour.
ROLLUP_ATTEMPTS = 3


async def roll_up_reports(runtime: Runtime, tenant: TenantContext) -> int:
    """The revenue report's per-day roll-up of closed days (``tenant/reports/rollup.py``):
    days recomputed. Its own READ COMMITTED transaction, retried on a transient error."""
    from sqlalchemy.exc import DBAPIError

    from core.sql import sql
    from tenant.reports.rollup import roll_up

    for attempt in range(1, ROLLUP_ATTEMPTS + 1):
        try:
            async with runtime.tenants.transaction(tenant.db_url) as db:
                return (await roll_up(await sql(db))).days
        except DBAPIError as error:
            if attempt == ROLLUP_ATTEMPTS or not _transient(error):
                raise
            log.warning("report roll-up of %s: %s; trying again", tenant.slug, error.orig)
            await asyncio.sleep(0.1 * attempt)
    return 0


def _transient(error: Exception) -> bool:
    import asyncpg

    cause = getattr(error, "orig", None) or error.__cause__
    return isinstance(cause, asyncpg.TransactionRollbackError)


JOBS: tuple[Job, ...] = (
    Job("resend_sandbox_webhooks", 60, resend_sandbox_webhooks, per_tenant=False),
    Job("sweep_inbox", 60, sweep_inbox),
    Job("deliver_notifications", 60, deliver_notifications),
    Job("deliver_outgoing_webhooks", 30, deliver_outgoing_webhooks),
    Job("expire_reservations", 60, expire_reservations),
    Job("sync_coupon_discounts", 10, sync_coupon_discounts),
    Job("approve_commissions", 60, approve_commissions),
    Job("cancel_unpaid_orders", 3600, cancel_unpaid),
    Job("reconcile", 900, reconcile),
    Job("purge_idempotency_keys", 3600, purge_idempotency_keys),
    Job("refresh_fx_rates", 3600, refresh_fx_rates, per_tenant=False),
    Job("roll_up_reports", 3600, roll_up_reports),
)


async def active_tenants(runtime: Runtime) -> list[TenantContext]:
    async with runtime.owner_session() as session:
        rows = (await session.scalars(select(Tenant).where(Tenant.status == "active")
                                      .order_by(Tenant.slug))).all()
        return [context_of(t) for t in rows]


async def run_job(runtime: Runtime, job: Job) -> dict[str, Any]:
    """Run one job over every active tenant; failures are counted, not raised."""
    done, failed = 0, []
    if not job.per_tenant:
        try:
            done = await job.run(runtime, None)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            log.exception("job %s failed", job.name)
            failed.append(("*", f"{type(exc).__name__}: {exc}"))
        return {"job": job.name, "count": done, "failed": failed}
    for tenant in await active_tenants(runtime):
        token = work_for(tenant)
        try:
            done += await job.run(runtime, tenant)
        except Exception as exc:  # noqa: BLE001 - one tenant must not stop the others
            log.exception("job %s failed for tenant %s", job.name, tenant.slug)
            failed.append((tenant.slug, f"{type(exc).__name__}: {exc}"))
        finally:
            done_working(token)
    return {"job": job.name, "count": done, "failed": failed}


async def run_once(runtime: Runtime, names: set[str] | None = None) -> list[dict[str, Any]]:
    return [await run_job(runtime, job) for job in JOBS if names is None or job.name in names]


class Leadership:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def hold(self) -> bool:
        """Take the lock if free, renew it if ours; True while we lead."""
        if await self.redis.set(LEADER_KEY, self.token, nx=True, px=LEASE_MS):
            return True
        renew = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                 "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end")
        return bool(await self.redis.eval(renew, 1, LEADER_KEY, self.token, LEASE_MS))

    async def release(self) -> None:
        script = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                  "return redis.call('del', KEYS[1]) else return 0 end")
        await self.redis.eval(script, 1, LEADER_KEY, self.token)


async def run_forever(runtime: Runtime, *, tick: float = 5.0) -> None:
    redis = get_redis()
    leader = Leadership(redis)
    log.info("scheduler %s started", leader.token)
    try:
        while True:
            try:
                if await leader.hold():
                    for job in JOBS:
                        key = f"paymesh:scheduler:last:{job.name}"
                        last = float(await redis.get(key) or 0)
                        if time.time() - last >= job.every_seconds:
                            await redis.set(key, str(time.time()))
                            result = await run_job(runtime, job)
                            log.info("job %s: %s", job.name, result)
            except Exception:  # noqa: BLE001 - Redis/DB outages: keep trying
                log.exception("scheduler tick failed")
            await asyncio.sleep(tick)
    finally:
        try:
            await leader.release()
        except Exception:  # noqa: BLE001
            pass
