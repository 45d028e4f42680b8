"""Outgoing delivery (issue 15): outbox → a loopback receiver, two real Dramatiq workers.

Setup (not measured), on the worker processing row's shop, whose orders that row paid
through the worker path:

- a loopback receiver in the bench process (:mod:`bench.receiver`); its capacity is
  measured first with the load generator, so the figure is known not to be its limit;
- ``ENDPOINTS`` webhook endpoints registered through ``POST /v1/webhook-endpoints``, each
  subscribed to ``order.paid`` (its own path on the receiver, its own secret). Several
  endpoints, because deliveries to one endpoint run at most
  ``PAYMESH_OUTGOING_ENDPOINT_CONCURRENCY`` (2) at a time across all workers: one
  endpoint would measure that cap, not the workers. 8 × 2 slots = the workers' 16
  threads. (Several integrations listening to ``order.paid`` is a common shape.);
- ``order.paid`` for N/8 of the paid orders written to the outbox by production's writer
  (:func:`tenant.outgoing.events.orders`, the settlement effect's one set-based
  statement: the events' ``data`` is the order as the API shows it), which makes one
  delivery per event and endpoint: N deliveries;
- the N pending deliveries enqueued on the ``outgoing`` queue by production's enqueuer
  (what the writer's after-commit hook or the scheduler's sweep sends), no worker running.

Measured: two ``paymesh worker --processes 1 --threads 8`` spawned exactly as the worker
processing row spawns them (start-up inside the clock, as there), until the tenant
database shows all N deliveries ``succeeded`` (polled every 0.2 s). The figure is
deliveries per second (one event delivered to one endpoint); the reference is the worker
processing row's events/s in the same run.

Its own check (an error, not noise, when it fails): deliveries succeeded in the database
== deliveries the writer made == events × endpoints == requests the receiver got, each
(endpoint, ``webhook-id``) exactly once, every signature verified with the
``standardwebhooks`` library against the endpoint's secret, nothing failed or left.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench import pg
from bench import shop as shops
from bench.context import Context, _cpu_seconds
from bench.load import LoadSpec, Request
from bench.receiver import Receiver, capacity_request_body
from bench.registry import Line, Target, row
from bench.rows.worker_processing import (
    WORKER_ARGS,
    WORKERS,
    paymesh_binary,
    ready_after,
    server_pids,
    watch_workers,
)
from bench.stack import Child

ENDPOINTS = 8
EVENT_TYPE = "order.paid"
OUTGOING_QUEUE = "outgoing"

SQL_STATE = """
    SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'exhausted') AS exhausted,
           count(*) AS deliveries,
           count(*) FILTER (WHERE response_status = 200) AS answered_200,
           count(DISTINCT (event_id, endpoint_id)) AS pairs,
           (SELECT count(*) FROM outgoing_events) AS events
    FROM outgoing_deliveries
"""
SQL_UPDATES = """
    SELECT coalesce(sum(n_tup_upd), 0) AS updates FROM pg_stat_user_tables
    WHERE relname = 'outgoing_deliveries'
"""


async def _flush_queues(ctx: Context) -> int:
    """Drop what earlier rows left in the ``default`` and ``outgoing`` queues."""
    def flush() -> int:
        broker = shops._broker(ctx.stack.redis_url)
        try:
            total = 0
            for queue in (shops.QUEUE, OUTGOING_QUEUE):
                total += int(broker.do_qsize(queue))
                broker.flush(queue)
            return total
        finally:
            broker.close()

    return await asyncio.to_thread(flush)


async def _write_events(shop: shops.Shop, order_ids: list[uuid.UUID]) -> tuple[int, float]:
    """``order.paid`` for ``order_ids`` through production's outbox writer, one statement
    in one transaction; (deliveries made, seconds)."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from core.db import async_url
    from core.sql import Transaction
    from tenant.outgoing import events as outbox

    engine = create_async_engine(async_url(shop.db_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            tx = Transaction(conn, await conn.begin())
            t0 = time.perf_counter()
            made = await outbox.orders(tx, outbox.EventType.ORDER_PAID, order_ids)
            await tx.finish(commit=True)
            return made, time.perf_counter() - t0
    finally:
        await engine.dispose()


async def _enqueue(ctx: Context, slug: str, delivery_ids: list[uuid.UUID]) -> None:
    """One message per delivery on the ``outgoing`` queue, by production's enqueuer."""
    from core.actors import DELIVER_OUTGOING_WEBHOOK
    from core.redis import get_redis
    from workers.broker import Enqueuer

    enqueuer = Enqueuer(ctx.stack.redis_url)
    try:
        for start in range(0, len(delivery_ids), 1000):
            batch = [(slug, str(i)) for i in delivery_ids[start:start + 1000]]
            if not await enqueuer.many(DELIVER_OUTGOING_WEBHOOK, batch):
                raise RuntimeError("enqueueing the deliveries failed (Redis)")
    finally:
        await get_redis(ctx.stack.redis_url).aclose()


async def _receiver_capacity(ctx: Context, receiver: Receiver) -> tuple[float, float]:
    """Requests/s the receiver answers under the load generator, and its p99 (ms)."""
    body = capacity_request_body()
    request = Request("POST", "/capacity", {
        "content-type": "application/json", "webhook-id": "msg_capacity",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, body)
    seconds = 1.0 if ctx.profile.quick else 2.0
    result = await ctx.generator.run(LoadSpec("receiver", receiver.base_url, [request]),
                                     seconds)
    if result.error_count:
        raise RuntimeError(f"the receiver failed its capacity load: {result.error_text()}")
    return result.rps, result.p99_ms


@row("outgoing_delivery", title="Outgoing delivery (outbox → receiver, 2 workers)",
     needs=("worker_processing",), issue=15)
async def outgoing_delivery(ctx: Context) -> list[Line]:
    """Deliveries/s to a loopback receiver (2 workers) vs the worker processing row."""
    wp = ctx.values["worker_processing"]
    if not wp["exact"]:
        raise RuntimeError("the worker processing row's own check failed; no reference")
    ref_events_s: float = wp["events_per_s"]
    shop: shops.Shop = wp["shop"]
    events = 40 if ctx.profile.quick else 250
    n = events * ENDPOINTS

    receiver = await Receiver().start()
    workers: list[Child] = []
    try:
        capacity, capacity_p99 = await _receiver_capacity(ctx, receiver)
        ctx.log(f"outgoing_delivery: receiver answers {capacity:,.0f} req/s "
                f"(p99 {capacity_p99:.1f} ms, {ctx.generator.name})")

        endpoint_secrets: dict[str, str] = {}
        for k in range(ENDPOINTS):
            resp = await ctx.api.post("/v1/webhook-endpoints", headers={
                **shop.auth, "Idempotency-Key": f"od-endpoint-{uuid.uuid4().hex}"}, json={
                    "url": receiver.url(f"e{k}"), "events": [EVENT_TYPE],
                    "description": f"bench receiver {k}"})
            if resp.status_code != 201:
                raise RuntimeError(f"POST /v1/webhook-endpoints answered {resp.status_code}: "
                                   f"{resp.text[:300]}")
            endpoint_secrets[f"e{k}"] = resp.json()["secret"]

        async with pg.connect(shop.db_url) as conn:
            before = await conn.fetchrow(SQL_STATE)
            order_ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM orders WHERE status = 'paid' ORDER BY number LIMIT $1",
                events)]
        if len(order_ids) < events:
            raise RuntimeError(f"only {len(order_ids)} paid orders to tell about "
                               f"(wanted {events})")
        if before["deliveries"] or before["events"]:
            raise RuntimeError(f"the outbox was not empty before the row: {dict(before)}")

        flushed = await _flush_queues(ctx)
        made, write_s = await _write_events(shop, order_ids)
        if made != n:
            raise RuntimeError(f"the outbox writer made {made} deliveries (wanted {n})")
        async with pg.connect(shop.db_url) as conn:
            delivery_ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM outgoing_deliveries WHERE status = 'pending' "
                "ORDER BY event_id, endpoint_id")]
        await _enqueue(ctx, shop.tenant.slug, delivery_ids)
        ctx.log(f"outgoing_delivery: {events} {EVENT_TYPE} events × {ENDPOINTS} endpoints = "
                f"{n} deliveries written ({1000 * write_s:.0f} ms, one statement) and "
                f"queued; starting {WORKERS} × paymesh {' '.join(WORKER_ARGS)}")

        await asyncio.sleep(1.5)  # the setup's statistics land before they are read
        updates0 = (await shops.counts(shop, SQL_UPDATES))["updates"]
        binary = paymesh_binary()
        servers = server_pids(ctx)
        server_cpu0 = {name: _cpu_seconds(pid) for name, pid in servers.items()}
        bench_cpu0 = _cpu_seconds_self()
        spawned_at = time.time()
        t0 = time.monotonic()
        for k in range(WORKERS):
            workers.append(ctx.stack.spawn(f"outgoing-worker-{k + 1}", [binary, *WORKER_ARGS],
                                           env=ctx.stack.api_env))
        deadline = t0 + max(180.0, n * 0.25)  # bounded: far above the expected time
        state, cpu_seen = await watch_workers(ctx, shop, SQL_STATE, workers, key="succeeded",
                                              n=n, t0=t0, deadline=deadline,
                                              what="deliveries succeeded")
        elapsed = time.monotonic() - t0
        server_cpu = {name: _cpu_seconds(pid) for name, pid in servers.items()}
        bench_cpu = _cpu_seconds_self() - bench_cpu0
        worker_cpu = sum(cpu_seen.values())
    finally:
        for w in workers:
            w.stop()
        await receiver.close()
    ctx.log(f"outgoing_delivery: {n} delivered in {elapsed:.1f} s from worker start")

    ready = [ready_after(w, spawned_at) for w in workers]
    await asyncio.sleep(1.5)  # the stopped workers' backends flush their statistics
    after = await shops.counts(shop, SQL_STATE)
    updates = (await shops.counts(shop, SQL_UPDATES))["updates"] - updates0
    # a delivery is claimed and finished (2 updates); one that found its endpoint's slots
    # taken was claimed and given back (2 more) and came again 0.5 s later
    busy = max(0, round((updates - 2 * n) / 2))
    verdict = receiver.verify(endpoint_secrets)
    per_endpoint = receiver.per_endpoint()
    arrivals = sorted(r.at for r in receiver.received)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    steady = (len(arrivals) - 1) / span if span > 0 else None
    first_after = arrivals[0] - t0 if arrivals else None
    expected_pairs = n
    exact = (after["succeeded"] == n and after["deliveries"] == n and after["pending"] == 0
             and after["failed"] == 0 and after["exhausted"] == 0
             and after["answered_200"] == n and after["events"] == events
             and after["pairs"] == expected_pairs and verdict.ok
             and verdict.requests == n and len(verdict.pairs) == n
             and set(per_endpoint) == set(endpoint_secrets)
             and all(c == events for c in per_endpoint.values()))
    ctx.note_command(f"outgoing_delivery: {WORKERS} × paymesh {' '.join(WORKER_ARGS)} (API env, "
                     f"PAYMESH_WEBHOOK_ALLOW_PRIVATE=1), {n} queued deliveries "
                     f"({events} {EVENT_TYPE} × {ENDPOINTS} endpoints)")
    server_used = {name: server_cpu[name] - server_cpu0[name] for name in servers
                   if server_cpu.get(name) is not None and server_cpu0.get(name) is not None}
    rate = n / elapsed
    ctx.details["outgoing_delivery"] = {
        "tenant": shop.tenant.slug, "events": events, "endpoints": ENDPOINTS,
        "deliveries": n, "seconds": elapsed, "deliveries_per_s": rate,
        "steady_deliveries_per_s": steady, "first_delivery_after_s": first_after,
        "reference_events_per_s": ref_events_s, "receiver_capacity_rps": capacity,
        "receiver_capacity_p99_ms": capacity_p99, "receiver_connections": receiver.connections,
        "bench_process_cpu_s": bench_cpu, "write_seconds": write_s, "flushed_before": flushed,
        "busy_retries": busy, "delivery_row_updates": updates, "after": after,
        "per_endpoint": dict(per_endpoint), "verified": verdict.verified,
        "bad_signatures": verdict.bad_signatures[:5], "duplicates": verdict.duplicates,
        "worker_cpu_s": worker_cpu, "workers_ready_after_s": ready, "server_cpu_s": server_used,
    }
    evidence = [
        f"{events} {EVENT_TYPE} events × {ENDPOINTS} endpoints = {n} deliveries, all "
        f"succeeded {elapsed:.1f} s after the 2 workers were spawned"
        + (f" (first one after {first_after:.1f} s: start-up)" if first_after else ""),
        f"first→last arrival {span:.1f} s ≈ {steady:.0f} deliveries/s steady" if steady else "",
        "workers ready for messages after "
        + " and ".join("?" if r is None else f"{r:.2f}" for r in ready) + " s",
        f"receiver: {verdict.requests} requests, {verdict.verified} signatures verified "
        f"(standardwebhooks), {verdict.duplicates} duplicate webhook-ids, per endpoint "
        f"{min(per_endpoint.values(), default=0)}–{max(per_endpoint.values(), default=0)}; "
        f"DB: {after['succeeded']:.0f} succeeded, {after['failed']:.0f} failed, "
        f"{after['pending']:.0f} pending: " + ("exact" if exact else "MISMATCH"),
        (f"receiver capacity {capacity:,.0f} req/s (p99 {capacity_p99:.1f} ms, "
         f"{ctx.generator.name}, {ctx.profile.connections} connections) = "
         f"{capacity / rate:.0f}× the figure; the bench process (receiver and polling) used "
         f"{bench_cpu:.2f} s CPU meanwhile"),
        (f"{busy} tries found their endpoint's 2 slots taken and came again 0.5 s later"),
        (f"worker CPU {worker_cpu:.1f} s ({1000 * worker_cpu / n:.2f} ms/delivery, "
         f"{100 * worker_cpu / elapsed:.0f}% of a core)"),
        "server CPU meanwhile: " + ", ".join(
            f"{name} {used:.1f} s ({1000 * used / n:.2f} ms/delivery)"
            for name, used in server_used.items()) if server_used else "",
        f"{flushed:,} stale queued messages flushed first" if flushed else "",
    ]
    if not exact:
        raise RuntimeError("outgoing delivery check failed: " + "; ".join(
            x for x in evidence if x) + f"; bad signatures: {verdict.bad_signatures[:3]}")
    return [
        Line(f"outgoing_delivery: deliveries/s outbox → receiver (2 workers, N={n})", rate,
             "deliveries/s", reference=ref_events_s, reference_unit="events/s",
             reference_label="worker processing", target=Target(">=", 0.5), valid=exact,
             note="; ".join(x for x in evidence if x)),
    ]


def _cpu_seconds_self() -> float:
    import os

    times = os.times()
    return times.user + times.system
