"""Sending one delivery (one attempt), Standard Webhooks style, and what follows it.

A delivery is *claimed* (``locked_until``) by one statement, sent with no transaction
open (a receiver may take 15 s; no database connection waits for it), and its outcome
recorded: successes by one more statement (a batch's together, see **Batches**), a
failure in a transaction under the endpoint's row lock (its failure clock and the
disabling decision read the row):

- a 2xx: ``succeeded``; the endpoint's failure clock stops;
- anything else (an error status, a timeout, a refused address): ``failed`` and the next
  attempt is a new ``pending`` row due after the schedule's next wait
  (``PAYMESH_OUTGOING_RETRY_SCHEDULE``), or ``exhausted`` after the last; a manual
  redelivery is one attempt with no retries;
- 410 Gone disables the endpoint at once; failures for
  ``PAYMESH_OUTGOING_DISABLE_AFTER_SECONDS`` (five days) with no success disable it too,
  and the tenant is told: a notice to its ``notification_email`` (``PATCH /v1/settings``)
  through the notifications outbox, an audit row ``webhook_endpoint.disabled``, the
  endpoint's ``enabled``/``disabled_reason``, a log line and a metric.

Deliveries to one endpoint run at most ``PAYMESH_OUTGOING_ENDPOINT_CONCURRENCY`` at a
time across all workers (a Redis semaphore); one that finds its endpoint busy gives its
claim back and comes again a moment later instead of waiting on a worker thread, so a
slow endpoint never holds up another endpoint or tenant.

**Batches.** A message that holds one of its endpoint's slots also claims up to
``BATCH - 1`` other due deliveries *to the same endpoint* and sends them after its own,
one after another over the same keep-alive connection (oldest event first), under that
one slot; their successes are recorded by one statement. So a backlog for an endpoint
costs one claim, one slot and one outcome statement per batch instead of per delivery,
and the messages of the batched deliveries find them done with one statement. A batch
stops at its first failure, or once it has run for ``BATCH_BUDGET_SECONDS``: the
deliveries it did not send are given back and their messages sent again, so a failing or
slow endpoint is tried one delivery at a time, as before, and no claim outlives its
margin (each send starts within the budget and lasts at most the send timeout).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from core import metrics, standard_webhooks
from core.audit import Actor, record
from core.db import utcnow
from core.errors import PaymeshError
from core.redis import get_redis
from core.runtime import Runtime
from core.sql import autocommit_sql, orm, sql
from core.tenancy import TenantContext
from tenant.audit.models import AuditLog
from tenant.outgoing import secrets

log = logging.getLogger(__name__)
SYSTEM = Actor.system("outgoing-webhooks")
#: How long a claimed delivery stays claimed beyond the send timeout (a crashed worker's
#: claim lapses; the sweep sends the delivery again).
CLAIM_MARGIN_SECONDS = 30
#: Wait before trying again when the endpoint is busy with other deliveries.
BUSY_RETRY_MS = 500
#: Deliveries one message sends at most: its own and due ones to the same endpoint.
BATCH = 16
#: A batch sends no further delivery once it has run this long (the rest are given back).
BATCH_BUDGET_SECONDS = 2.0

#: What sending a delivery needs, for the claimed rows ``d`` (see the claims below).
_CLAIMED = """
RETURNING d.id, d.attempt, d.manual, d.endpoint_id, e.url, e.enabled, e.secret_enc,
          e.previous_secret_enc, e.previous_expires_at, ev.id AS event_id, ev.type,
          ev.created_at AS event_created_at, ev.data
"""
_CLAIM = """
UPDATE outgoing_deliveries d SET locked_until = $2
FROM webhook_endpoints e, outgoing_events ev
WHERE d.id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $3
  AND (d.locked_until IS NULL OR d.locked_until < $3)
  AND e.id = d.endpoint_id AND ev.id = d.event_id
""" + _CLAIMED
#: The batch's mates: other due, unclaimed deliveries to the endpoint (rows another
#: claim is taking right now are skipped), oldest first.
_CLAIM_MATES = """
WITH mates AS (
    SELECT id FROM outgoing_deliveries
    WHERE endpoint_id = $1 AND status = 'pending' AND id <> $2 AND next_attempt_at <= $4
      AND (locked_until IS NULL OR locked_until < $4)
    ORDER BY next_attempt_at, created_at
    LIMIT $5
    FOR UPDATE SKIP LOCKED)
UPDATE outgoing_deliveries d SET locked_until = $3
FROM mates, webhook_endpoints e, outgoing_events ev
WHERE d.id = mates.id AND e.id = d.endpoint_id AND ev.id = d.event_id
""" + _CLAIMED
_UNCLAIM = """
UPDATE outgoing_deliveries SET locked_until = NULL WHERE id = ANY($1::uuid[]) AND status = 'pending'
"""
_LOCK_ENDPOINT = """
SELECT enabled, first_failure_at, url FROM webhook_endpoints WHERE id = $1 FOR UPDATE
"""
_FINISH = """
UPDATE outgoing_deliveries
SET status = $2, response_status = $3, latency_ms = $4, error = $5, locked_until = NULL
WHERE id = ANY($1::uuid[]) AND status = 'pending'
"""
_NEXT = """
INSERT INTO outgoing_deliveries (id, event_id, endpoint_id, attempt, status,
                                 next_attempt_at, manual, created_at)
VALUES ($1, $2, $3, $4, 'pending', $5, false, $6)
ON CONFLICT (event_id, endpoint_id, attempt) DO NOTHING
"""
#: A batch's 2xx answers in one statement, outside a transaction: the deliveries
#: succeeded and the endpoint's failure clock stops. (The endpoint's row is locked only
#: if its clock runs, by the UPDATE itself, which waits for a failure being recorded at
#: the same time.)
_SUCCEEDED = """
WITH finished AS (
    UPDATE outgoing_deliveries d
    SET status = 'succeeded', response_status = v.status, latency_ms = v.latency_ms,
        error = NULL, locked_until = NULL
    FROM unnest($1::uuid[], $2::int[], $3::int[]) AS v(id, status, latency_ms)
    WHERE d.id = v.id AND d.status = 'pending')
UPDATE webhook_endpoints SET first_failure_at = NULL, updated_at = $5
WHERE id = $4 AND first_failure_at IS NOT NULL
"""
_ENDPOINT_FAILING = """
UPDATE webhook_endpoints SET first_failure_at = coalesce(first_failure_at, $2), updated_at = $2
WHERE id = $1
"""
_DISABLE = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = $3
WHERE id = $1 AND enabled
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the actor does next: send ``next_id`` at ``next_at`` (a retry, or a try
    again when the endpoint was busy); nothing when both are None. ``resend``: deliveries
    of the batch given back unsent, whose messages are sent again now (theirs may have
    been taken while the batch held them)."""

    status: str
    next_id: uuid.UUID | None = None
    next_at: datetime | None = None
    resend: tuple[uuid.UUID, ...] = ()


def event_body(event_id: uuid.UUID, kind: str, created_at: datetime,
               data: dict[str, Any]) -> bytes:
    """The delivered JSON: ``{id, type, created_at, data}``, the same bytes every time."""
    return msgspec.json.encode({"id": str(event_id), "type": kind,
                                "created_at": created_at, "data": data})


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature (:mod:`core.standard_webhooks`) under an
    endpoint's secret."""
    key = standard_webhooks.secret_key(secret)
    if key is None:
        raise ValueError("an endpoint secret is a Standard Webhooks secret")
    return standard_webhooks.sign(key, msg_id, timestamp, body)


def signature_header(live_secrets: list[str], msg_id: str, timestamp: int,
                     body: bytes) -> str:
    """One signature per live secret, space-separated (two during a rotation overlap)."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in live_secrets)


# ----------------------------------------------------------------------------- one endpoint


_ACQUIRE = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('zadd', KEYS[1], ARGV[2], ARGV[4])
    redis.call('pexpire', KEYS[1], 600000)
    return 1
end
return 0
"""


class EndpointSlots:
    """At most ``limit`` deliveries in flight per endpoint across all workers: a sorted
    set of holders scored by when their hold lapses (a crashed holder's lapses)."""

    def __init__(self, endpoint_id: uuid.UUID, limit: int, hold_seconds: int) -> None:
        self.key = f"paymesh:outgoing:inflight:{endpoint_id}"
        self.limit, self.hold_ms = limit, hold_seconds * 1000
        self.token = uuid.uuid4().hex

    async def acquire(self) -> bool:
        now_ms = int(time.time() * 1000)
        try:
            return bool(await get_redis().eval(_ACQUIRE, 1, self.key, now_ms,
                                               now_ms + self.hold_ms, self.limit, self.token))
        except Exception as exc:  # noqa: BLE001 - Redis away: send anyway (the broker is
            log.warning("endpoint slots unavailable (%s)", type(exc).__name__)  # too)
            return True

    async def release(self) -> None:
        try:
            await get_redis().zrem(self.key, self.token)
        except Exception:  # noqa: BLE001 - the hold lapses on its own
            pass


# ----------------------------------------------------------------------------- delivering


async def deliver(runtime: Runtime, tenant: TenantContext, delivery_id: uuid.UUID) -> Outcome:
    """Send one pending delivery that is due, then the due ones waiting for the same
    endpoint (a batch, see the module docstring), and record the outcomes."""
    settings = runtime.settings
    now = utcnow()
    claim_until = now + timedelta(seconds=settings.outgoing_timeout_seconds
                                  + CLAIM_MARGIN_SECONDS)
    async with runtime.tenants.connect(tenant.db_url) as conn:  # one statement: no BEGIN
        row = await (await autocommit_sql(conn)).fetchrow(_CLAIM, delivery_id, claim_until,
                                                          now)
    if row is None:
        return Outcome("skipped")  # done, claimed by another worker, or not due yet
    if not row["enabled"]:
        await _execute(runtime, tenant, _FINISH, [delivery_id], "failed", None, None,
                       "the endpoint is disabled")
        return Outcome("failed")
    slots = EndpointSlots(row["endpoint_id"], settings.outgoing_endpoint_concurrency,
                          settings.outgoing_timeout_seconds + CLAIM_MARGIN_SECONDS)
    if not await slots.acquire():
        await _execute(runtime, tenant, _UNCLAIM, [delivery_id])
        return Outcome("busy", delivery_id, utcnow() + timedelta(milliseconds=BUSY_RETRY_MS))
    try:
        async with runtime.tenants.connect(tenant.db_url) as conn:
            mates = await (await autocommit_sql(conn)).fetch(
                _CLAIM_MATES, row["endpoint_id"], delivery_id, claim_until, now, BATCH - 1)
        batch = [row, *sorted(mates, key=lambda m: (m["event_created_at"], m["id"]))]
        sent: list[tuple[Any, Sent]] = []
        started = time.monotonic()
        for claimed in batch:
            if sent and (sent[-1][1].status != "succeeded"
                         or time.monotonic() - started > BATCH_BUDGET_SECONDS):
                break
            sent.append((claimed, await _send(runtime, tenant, claimed)))
    finally:
        await slots.release()
    return await _record(runtime, tenant, sent, [r["id"] for r in batch[len(sent):]])


@dataclass(frozen=True, slots=True)
class Sent:
    """How one try went."""

    status: str  # succeeded | failed
    response_status: int | None
    latency_ms: int | None
    error: str | None


async def _execute(runtime: Runtime, tenant: TenantContext, statement: str,
                   *args: Any) -> None:
    """One statement on its own (autocommit: no BEGIN/COMMIT round trips)."""
    async with runtime.tenants.connect(tenant.db_url) as conn:
        await (await autocommit_sql(conn)).execute(statement, *args)


async def _send(runtime: Runtime, tenant: TenantContext, row: Any) -> Sent:
    """POST the event."""
    from tenant.outgoing.transport import sender

    settings = runtime.settings
    live = secrets.live_secrets(runtime, tenant, row["endpoint_id"], row["secret_enc"],
                                row["previous_secret_enc"], row["previous_expires_at"])
    msg_id = str(row["event_id"])
    body = event_body(row["event_id"], row["type"], row["event_created_at"], row["data"])
    timestamp = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(timestamp),
               "webhook-signature": signature_header(live, msg_id, timestamp, body)}
    http = sender(timeout_seconds=settings.outgoing_timeout_seconds,
                  allow_private=settings.webhook_allow_private)
    started = time.perf_counter()
    try:
        response_status = await http.post(row["url"], body, headers)
    except PaymeshError as exc:  # the guard refused the address it resolved
        metrics.OUTGOING_ATTEMPTS.labels(outcome="refused").inc()
        return Sent("failed", None, None, f"{exc.code}: {exc.message}"[:500])
    except Exception as exc:  # noqa: BLE001 - a timeout, a refused connection …
        elapsed = time.perf_counter() - started
        metrics.OUTGOING_ATTEMPTS.labels(outcome="error").inc()
        metrics.OUTGOING_LATENCY.observe(elapsed)
        return Sent("failed", None, int(elapsed * 1000), f"{type(exc).__name__}: {exc}"[:500])
    elapsed = time.perf_counter() - started
    metrics.OUTGOING_LATENCY.observe(elapsed)
    ok = 200 <= response_status < 300
    metrics.OUTGOING_ATTEMPTS.labels(outcome="succeeded" if ok else "http_error").inc()
    return Sent("succeeded" if ok else "failed", response_status, int(elapsed * 1000), None)


async def _record(runtime: Runtime, tenant: TenantContext, sent: list[tuple[Any, Sent]],
                  unsent: list[uuid.UUID]) -> Outcome:
    """Record a batch: its successes in one statement, then its failure (the last try,
    if it failed), then give back what it did not send. The outcome is the message's own
    delivery's (the batch's first), with the failure's retry and the deliveries to send
    again."""
    succeeded = [(row, try_) for row, try_ in sent if try_.status == "succeeded"]
    if succeeded:
        await _execute(runtime, tenant, _SUCCEEDED, [row["id"] for row, _ in succeeded],
                       [t.response_status for _, t in succeeded],
                       [t.latency_ms for _, t in succeeded], sent[0][0]["endpoint_id"],
                       utcnow())
    own = sent[0][1].status
    failed: Outcome | None = None
    if sent[-1][1].status != "succeeded":
        failed = await _record_failure(runtime, tenant, *sent[-1])
        if len(sent) == 1:
            own = failed.status
    if unsent:
        await _execute(runtime, tenant, _UNCLAIM, unsent)
    return Outcome(own, failed.next_id if failed else None, failed.next_at if failed else None,
                   tuple(unsent))


async def _record_failure(runtime: Runtime, tenant: TenantContext, row: Any,
                          try_: Sent) -> Outcome:
    """A failed try, under the endpoint's row lock: ``failed`` with the next attempt due
    after the schedule's next wait, or ``exhausted``; 410 or five days of failures
    disable the endpoint."""
    settings = runtime.settings
    schedule = settings.outgoing_retry_schedule
    now = utcnow()
    next_id: uuid.UUID | None = None
    next_at: datetime | None = None
    endpoint_id = row["endpoint_id"]
    async with runtime.tenants.transaction(tenant.db_url) as db:
        statements = await sql(db)
        endpoint = await statements.fetchrow(_LOCK_ENDPOINT, endpoint_id)
        metrics.OUTGOING_FAILURES.inc()
        attempt = row["attempt"]
        gone = try_.response_status == 410
        failing_since = (endpoint["first_failure_at"] or now) if endpoint else now
        too_long = now - failing_since >= timedelta(
            seconds=settings.outgoing_disable_after_seconds)
        retry = (not row["manual"] and not gone and not too_long and endpoint is not None
                 and endpoint["enabled"] and attempt <= len(schedule))
        final = "failed" if (retry or row["manual"] or gone or too_long) else "exhausted"
        if final == "exhausted":
            metrics.OUTGOING_EXHAUSTED.inc()
        await statements.execute(_FINISH, [row["id"]], final, try_.response_status,
                                 try_.latency_ms, try_.error)
        await statements.execute(_ENDPOINT_FAILING, endpoint_id, now)
        if retry:
            next_id, next_at = uuid.uuid4(), now + timedelta(seconds=schedule[attempt - 1])
            await statements.execute(_NEXT, next_id, row["event_id"], endpoint_id,
                                     attempt + 1, next_at, now)
        if (gone or too_long) and endpoint is not None and endpoint["enabled"]:
            await _disable(db, endpoint_id, endpoint["url"], "gone" if gone else "failing",
                           now)
    return Outcome(final, next_id, next_at)


async def _disable(db: Any, endpoint_id: uuid.UUID, url: str, reason: str,
                   now: datetime) -> None:
    """Turn the endpoint off and tell the tenant: a notice to its ``notification_email``
    (settings) through the notifications outbox, in this transaction; an audit row, a log
    line and a metric either way."""
    from tenant.notifications import service as notifications

    statements = await sql(db)
    await statements.execute(_DISABLE, endpoint_id, reason, now)
    why = ("it answered 410 Gone" if reason == "gone"
           else "its deliveries have failed for five days")
    recipient = await statements.fetchval(
        "SELECT notification_email FROM tenant_settings WHERE id = 1")
    await notifications.queue(
        db, recipient=recipient, template="webhook_endpoint_disabled",
        subject="A webhook endpoint was disabled",
        body=(f"Paymesh stopped sending webhooks to {url} because {why}. Fix the receiver, "
              f"then enable the endpoint again (PATCH /v1/webhook-endpoints/{endpoint_id} "
              '{"enabled": true}) and redeliver what it missed.'),
        dedupe_key=f"webhook_endpoint.disabled:{endpoint_id}:{now.isoformat()}",
        data={"endpoint_id": str(endpoint_id), "url": url, "reason": reason})
    record(await orm(db), AuditLog, SYSTEM, "webhook_endpoint.disabled", "webhook_endpoint",
           endpoint_id, {"reason": reason, "url": url,
                         "notified": recipient is not None})
    metrics.OUTGOING_ENDPOINTS_DISABLED.labels(reason=reason).inc()
    log.warning("webhook endpoint %s disabled: %s", endpoint_id, why)


async def due(runtime: Runtime, tenant: TenantContext, *, older_than_seconds: int,
              limit: int = 500) -> list[uuid.UUID]:
    """Pending deliveries overdue by more than ``older_than_seconds`` and not claimed:
    their message was lost (a crash between commit and enqueue, the broker away)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    async with runtime.tenants.transaction(tenant.db_url) as db:
        rows = await (await sql(db)).fetch("""
            SELECT id FROM outgoing_deliveries
            WHERE status = 'pending' AND next_attempt_at <= $1
              AND (locked_until IS NULL OR locked_until < $2)
            ORDER BY next_attempt_at LIMIT $3""", cutoff, utcnow(), limit)
    return [r["id"] for r in rows]
