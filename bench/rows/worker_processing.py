"""Worker processing (issue 4): inbox → paid order, two real Dramatiq worker processes.

Setup (not measured): a fresh sandbox shop, N orders each with a sandbox checkout (bounded
concurrency), then one signed ``payment.succeeded`` event per order delivered through
``POST /webhooks/{tenant}/sandbox`` while no worker runs, so all N wait in the inbox and in
Redis. (Messages earlier rows left in the queue, e.g. the ingest row's events, are flushed
first, so the workers see exactly these N.) Then two ``paymesh worker --processes 1
--threads 8`` start with the API's environment, and the clock runs from their start until
the tenant database shows all N orders ``paid`` (polled in SQL every 0.2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench import shop as shops
from bench.context import Context, _cpu_seconds
from bench.registry import Line, Target, row
from bench.stack import Child

WORKER_ARGS = ["worker", "--processes", "1", "--threads", "8"]
WORKERS = 2
SETUP_CONCURRENCY = 8

SQL_STATE = """
    SELECT (SELECT count(*) FROM orders WHERE status = 'paid') AS paid,
           (SELECT count(*) FROM orders) AS orders,
           (SELECT count(*) FROM payments WHERE status = 'succeeded') AS succeeded,
           (SELECT count(*) FROM webhook_events WHERE status = 'received') AS received,
           (SELECT count(*) FROM webhook_events WHERE status = 'processed') AS processed,
           (SELECT count(*) FROM webhook_events WHERE status = 'failed') AS failed,
           (SELECT count(*) FROM webhook_events WHERE status = 'dead') AS dead,
           (SELECT coalesce(sum(attempts), 0) FROM webhook_events) AS attempts
"""
SQL_AFTER = """
    SELECT (SELECT count(*) FROM ledger_transactions) AS ledger_transactions,
           (SELECT count(*) FROM notifications) AS notifications,
           extract(epoch FROM (SELECT min(processed_at) FROM webhook_events)) AS first_at,
           extract(epoch FROM (SELECT max(processed_at) FROM webhook_events)) AS last_at,
           extract(epoch FROM now()) AS db_now
"""


#: Dramatiq's log line once a worker process consumes (its timestamp: local time).
_READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] .*ready for action",
                    re.MULTILINE)


def ready_after(child: Child, spawned_at: float) -> float | None:
    """Seconds from spawning a worker to its "ready for action" log line."""
    found = _READY.search(child.log_tail(100_000))
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - spawned_at


def server_pids(ctx: Context) -> dict[str, int]:
    """The embedded Postgres postmaster and Redis server (none when they are real ones)."""
    pids = {}
    if ctx.stack.embedded_pg is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_file = ctx.stack.embedded_pg.data_dir / "postmaster.pid"
            pids["postgres"] = int(pid_file.read_text().splitlines()[0])
    if ctx.stack.embedded_redis is not None:
        pids["redis"] = ctx.stack.embedded_redis.process.pid
    return pids


def paymesh_binary() -> str:
    import sys

    from bench.stack import ROOT

    binary = Path(sys.executable).parent / "paymesh"
    return str(binary if binary.exists() else ROOT / ".venv" / "bin" / "paymesh")


async def _gather_bounded(n: int, fn: Any, *, concurrency: int, deadline: float,
                          log: Any, what: str) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)
    out: list[Any] = [None] * n
    started = last = time.monotonic()
    done = 0

    async def one(i: int) -> None:
        nonlocal done, last
        async with gate:
            out[i] = await fn(i)
        done += 1
        if time.monotonic() - last > 10 or done == n:
            last = time.monotonic()
            log(f"  {done}/{n} {what} ({last - started:.0f} s)")

    async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
        for i in range(n):
            group.create_task(one(i))
    return out


@row("worker_processing", title="Worker processing (inbox → paid, 2 workers)",
     needs=("references",), issue=4)
async def worker_processing(ctx: Context) -> list[Line]:
    """Events/s from worker start until N orders are paid (2 workers) vs pgbench -N TPS."""
    ref_tps = ctx.values["ref.pgbench"]["simple_update_tps"]
    n = 300 if ctx.profile.quick else 2_000
    shop = await shops.sandbox_shop(ctx)
    ctx.log(f"worker_processing: tenant {shop.tenant.slug}; {n} orders with a sandbox "
            f"checkout each, {SETUP_CONCURRENCY} at a time (setup, not measured)")

    async def open_order(i: int) -> dict[str, Any]:
        created = await ctx.api.post("/v1/orders", json=shop.order_body(), headers={
            **shop.auth, "Idempotency-Key": f"wp-order-{uuid.uuid4().hex}"})
        if created.status_code != 201:
            raise RuntimeError(f"order {i}: {created.status_code} {created.text[:300]}")
        order = created.json()
        checkout = await ctx.api.post(f"/v1/orders/{order['id']}/checkout",
                                      json={"provider": "sandbox"}, headers={
                                          **shop.auth,
                                          "Idempotency-Key": f"wp-checkout-{uuid.uuid4().hex}"})
        if checkout.status_code != 201:
            raise RuntimeError(f"checkout {i}: {checkout.status_code} {checkout.text[:300]}")
        payment = checkout.json()["payment"]
        return {"order_id": order["id"], "total": order["total"],
                "provider_payment_id": payment["provider_payment_id"]}

    t_setup = time.monotonic()
    orders = await _gather_bounded(n, open_order, concurrency=SETUP_CONCURRENCY,
                                   deadline=max(300.0, n * 0.5), log=ctx.log,
                                   what="orders checked out")
    setup_s = time.monotonic() - t_setup

    flushed = await shops.flush_queue(ctx)
    if flushed:
        ctx.log(f"worker_processing: flushed {flushed:,} messages earlier rows left queued")

    # the events, signed right before delivery (tolerance 300 s), with no worker running
    ts = int(time.time())
    run = uuid.uuid4().hex[:10]
    events = [shops.signed_request(shop, shops.event_body(
        f"evt_wp_{run}_{i:06d}", "payment.succeeded",
        {"id": o["provider_payment_id"], "amount": o["total"], "currency": "USD",
         "reference": o["order_id"], "status": "succeeded"}, ts), ts)
        for i, o in enumerate(orders)]

    async def deliver(i: int) -> int:
        req = events[i]
        resp = await ctx.api.post(req.path, headers=req.headers, content=req.body)
        if resp.status_code != 200 or resp.json().get("duplicate"):
            raise RuntimeError(f"event {i}: {resp.status_code} {resp.text[:300]}")
        return resp.status_code

    ctx.log(f"worker_processing: delivering {n} signed payment.succeeded events (no worker)")
    await _gather_bounded(n, deliver, concurrency=16, deadline=max(120.0, n * 0.2),
                          log=ctx.log, what="events delivered")
    before = await shops.counts(shop, SQL_STATE)
    queued = await shops.queue_size(ctx)
    if before["received"] != n or before["paid"] != 0:
        raise RuntimeError(f"before the workers: {before} (wanted {n} received, 0 paid)")
    ctx.log(f"worker_processing: inbox {before['received']:.0f} received, {queued} queued; "
            f"starting {WORKERS} × paymesh {' '.join(WORKER_ARGS)}")

    workers: list[Child] = []
    binary = paymesh_binary()
    api_cpu0 = _cpu_seconds(ctx.stack.api.pid if ctx.stack.api else None)
    commits0 = await shops.db_commits(ctx, shop)
    servers = server_pids(ctx)
    server_cpu0 = {name: _cpu_seconds(pid) for name, pid in servers.items()}
    polls = 0  # the bench's own counting queries commit in the tenant database too
    spawned_at = time.time()
    t0 = time.monotonic()
    try:
        for k in range(WORKERS):
            workers.append(ctx.stack.spawn(f"worker-{k + 1}", [binary, *WORKER_ARGS],
                                           env=ctx.stack.api_env))
        deadline = t0 + max(180.0, n * 0.25)  # bounded: ~10× the expected time
        first_paid_at: float | None = None

        def seen(state: dict[str, float], now: float) -> None:
            nonlocal first_paid_at, polls
            polls += 1
            if first_paid_at is None and state["paid"] > 0:
                first_paid_at = now

        state, cpu_seen = await watch_workers(ctx, shop, SQL_STATE, workers, key="paid", n=n,
                                              t0=t0, deadline=deadline, what="orders paid",
                                              on_state=seen)
        elapsed = time.monotonic() - t0
        api_cpu1 = _cpu_seconds(ctx.stack.api.pid if ctx.stack.api else None)
        # before the workers stop: the backends that served them exit with them
        server_cpu = {name: _cpu_seconds(pid) for name, pid in servers.items()}
        worker_cpu = sum(cpu_seen.values())
        worker_rss = 0
        for w in workers:
            try:
                proc = psutil.Process(w.pid)
                worker_rss += sum(c.memory_info().rss for c in [proc, *proc.children(True)])
            except psutil.Error:
                pass
    finally:
        for w in workers:
            w.stop()
    ctx.log(f"worker_processing: {n} paid in {elapsed:.1f} s from worker start")
    ready = [ready_after(w, spawned_at) for w in workers]
    await asyncio.sleep(1.5)  # the stopped workers' backends flush their statistics
    commits = (await shops.db_commits(ctx, shop))["xact_commit"] - commits0["xact_commit"] \
        - polls
    after = {**await shops.counts(shop, SQL_STATE), **await shops.counts(shop, SQL_AFTER)}
    ctx.note_command(f"worker_processing: {WORKERS} × paymesh {' '.join(WORKER_ARGS)} "
                     f"(API env), {n} queued payment.succeeded events")

    server_used = {name: server_cpu[name] - server_cpu0[name] for name in servers
                   if server_cpu.get(name) is not None and server_cpu0.get(name) is not None}
    events_s = n / elapsed
    span = (after["last_at"] or 0) - (after["first_at"] or 0)
    steady = (n - 1) / span if span > 0 else None
    startup = (first_paid_at - t0) if first_paid_at else None
    retries = int(after["attempts"] - n)
    exact = (after["paid"] == n and after["succeeded"] == n and after["processed"] == n
             and after["failed"] == 0 and after["dead"] == 0
             and after["ledger_transactions"] == n)
    # what the outgoing delivery row compares itself with (and delivers the orders of)
    ctx.values["worker_processing"] = {"events_per_s": events_s, "steady_events_per_s": steady,
                                       "events": n, "exact": exact, "shop": shop}
    ctx.details["worker_processing"] = {
        "tenant": shop.tenant.slug, "events": n, "seconds": elapsed, "events_per_s": events_s,
        "steady_events_per_s": steady, "first_paid_after_s": startup, "setup_seconds": setup_s,
        "flushed_before": flushed, "queued_before": queued, "before": before, "after": after,
        "worker_cpu_s": worker_cpu, "worker_rss_bytes": worker_rss,
        "workersready_after_s": ready, "worker_commits": commits,
        "server_cpu_s": server_used,
        "api_cpu_s": (api_cpu1 - api_cpu0) if api_cpu0 is not None and api_cpu1 else None,
    }
    evidence = [
        f"{n} events, all paid {elapsed:.1f} s after the 2 workers were spawned (first order "
        f"paid after {startup:.1f} s: start-up)" if startup is not None else "",
        f"first→last processed_at {span:.1f} s ≈ {steady:.0f} events/s steady" if steady
        else "",
        "workers ready for messages after "
        + " and ".join("?" if r is None else f"{r:.2f}" for r in ready) + " s",
        f"{commits:,.0f} transactions committed by the workers in the tenant database, "
        f"single reads included ({n / commits:.2f} events per commit)" if commits > 0 else "",
        f"after: {after['paid']:.0f} orders paid, {after['succeeded']:.0f} attempts succeeded, "
        f"{after['processed']:.0f} events processed, {after['failed']:.0f} failed, "
        f"{after['dead']:.0f} dead, {retries} retries, {after['ledger_transactions']:.0f} "
        f"ledger transactions, {after['notifications']:.0f} notifications: "
        + ("exact" if exact else "MISMATCH"),
        (f"worker CPU {worker_cpu:.1f} s ({1000 * worker_cpu / n:.1f} ms/event, "
         f"{100 * worker_cpu / elapsed:.0f}% of a core), worker RSS "
         f"{worker_rss / 2**20:.0f} MB"),
        "server CPU meanwhile: " + ", ".join(
            f"{name} {used:.1f} s ({1000 * used / n:.2f} ms/event)"
            for name, used in server_used.items()) if server_used else "",
        f"setup: {n} order+checkout in {setup_s:.0f} s; {flushed:,} stale queued messages "
        f"flushed first" if flushed else f"setup: {n} order+checkout in {setup_s:.0f} s",
    ]
    return [
        Line(f"worker_processing: events/s inbox → paid (2 workers, N={n})", events_s,
             "events/s", reference=ref_tps, reference_unit="TPS",
             reference_label="pgbench -N", target=Target(">=", 0.15), valid=exact,
             note="; ".join(x for x in evidence if x)),
    ]


async def watch_workers(ctx: Context, shop: Any, query: str, workers: list[Any], *, key: str,
                        n: int, t0: float, deadline: float, what: str,
                        on_state: Callable[[dict[str, float], float], None] | None = None,
                        ) -> tuple[dict[str, float], dict[int, float]]:
    """Poll ``query`` until ``state[key]`` reaches ``n``; returns the last state and each
    worker's CPU seconds (children included), kept while it lived. A worker that exits or
    the deadline passing fails the row; progress is logged every 10 s."""
    last_log = t0
    cpu_seen: dict[int, float] = {}
    while True:
        state = await shops.counts(shop, query)
        now = time.monotonic()
        for w in workers:
            cpu = _cpu_seconds(w.pid)
            if cpu is not None:
                cpu_seen[w.pid] = cpu
        if on_state is not None:
            on_state(state, now)
        if state[key] >= n:
            return state, cpu_seen
        dead = [w for w in workers if not w.alive()]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited with {dead[0].popen.returncode}: "
                               f"{dead[0].log_tail(800)}")
        if now > deadline:
            raise RuntimeError(f"only {state[key]:.0f}/{n} {what} after {now - t0:.0f} s: "
                               f"{state}")
        if now - last_log > 10:
            last_log = now
            ctx.log(f"  {state[key]:.0f}/{n} {what} ({now - t0:.0f} s)")
        await asyncio.sleep(0.2)
