"""Webhook ingest (issue 4): valid signed sandbox events, unique ids, replayed by wrk.

The requests are generated right before the load (the signature tolerance is 300 s), one
unique ``evt_…`` per request, written to wrk's data file and replayed round-robin; the
warm-up uses its own set, so the measured load never sends an id twice (each wrk thread
starts at its own offset and would need more than half the set to wrap). The events are of
an unknown type (stored as ``ignored``), which is all ingest needs. No worker runs: the
events stay ``received`` in the inbox and their messages wait in Redis.
"""

from __future__ import annotations

import time

from bench import shop as shops
from bench.context import Context
from bench.load import LoadSpec
from bench.registry import Line, Target, row

SQL_INBOX = """
    SELECT count(*) FILTER (WHERE status = 'received') AS received,
           count(*) AS total
    FROM webhook_events
"""


@row("webhook_ingest", title="Webhook ingest (signed sandbox events)", needs=("references",),
     issue=4)
async def webhook_ingest(ctx: Context) -> list[Line]:
    """Signed, unique sandbox webhooks: req/s and p99 at 64 conns vs the Litestar POST."""
    ref = ctx.values["ref.litestar"]
    p = ctx.profile
    shop = await shops.sandbox_shop(ctx, product=False)
    ctx.log(f"webhook_ingest: tenant {shop.tenant.slug}, sandbox default")
    one = shops.noise_requests(shop, 1, "probe")[0]
    resp = await ctx.api.post(one.path, headers=one.headers, content=one.body)
    if resp.status_code != 200 or resp.json().get("duplicate"):
        raise RuntimeError(f"a signed sandbox webhook answered {resp.status_code}: "
                           f"{resp.text[:300]}")

    measured_n = 50_000 if p.quick else 200_000
    warm_n = 20_000
    t0 = time.perf_counter()
    warm_spec = LoadSpec("webhook ingest (warm-up)", ctx.stack.api_url,
                         shops.noise_requests(shop, warm_n, "warm"))
    spec = LoadSpec("webhook ingest", ctx.stack.api_url,
                    shops.noise_requests(shop, measured_n, "load"))
    ctx.log(f"webhook_ingest: signed {warm_n + measured_n:,} unique events in "
            f"{time.perf_counter() - t0:.1f} s (fresh: tolerance 300 s)")

    async def probe() -> dict[str, float]:
        return {**await shops.counts(shop, SQL_INBOX), **await shops.db_commits(ctx, shop),
                "queued": float(await shops.queue_size(ctx))}

    before_all = await shops.counts(shop, SQL_INBOX)
    result = await ctx.measure(spec, label="webhook_ingest", probe=probe, warmup_spec=warm_spec)
    after_all = await shops.counts(shop, SQL_INBOX)
    ctx.note_command(f"webhook_ingest: wrk -t {p.threads} -c {p.connections} -d "
                     f"{round(p.duration_s)}s --timeout 30s -s webhook_ingest.lua (round-robin "
                     f"over {measured_n:,} pre-signed unique events; warm-up on "
                     f"{warm_n:,} others)")

    # the inbox against wrk's 200s: measured load alone, and warm-up + measured together
    warm = result.warmup
    ok = result.ok_responses
    ok_all = ok + (warm.ok_responses if warm else 0)
    d = result.probes
    # every status counts: a 200 means stored, whatever a worker did with the row since
    stored = int(d.get("total", 0))
    stored_all = int(after_all["total"] - before_all["total"])
    # wrk stops with ≤ 1 request in flight per connection, which the server still finishes
    # (the warm-up's may land after the first probe read)
    slack = p.connections
    match = 0 <= stored - ok <= 2 * slack
    match_all = 0 <= stored_all - ok_all <= 2 * slack
    if stored < ok:
        ctx.log(f"webhook_ingest: only {stored} stored for {ok} 200s (duplicates?)")
    wrapped = result.requests > measured_n // max(1, p.threads)
    listing = await ctx.api.get("/v1/webhook-events", headers=shop.auth,
                                params={"status": "received", "limit": 1})
    listed = listing.status_code == 200 and bool(listing.json()["data"])
    transport = {k: v for k, v in result.errors.items() if v}
    valid = not transport and match and match_all and listed and not wrapped and ok > 0

    ctx.details["webhook_ingest"] = {
        "tenant": shop.tenant.slug, "load": result.as_dict(), "prepared": measured_n,
        "warmup_prepared": warm_n, "inbox_delta_measured": stored, "ok_measured": ok,
        "inbox_delta_total": stored_all, "ok_total": ok_all, "probes": d,
    }
    requests = max(1, result.requests)
    evidence = [
        f"{result.requests:,} requests, {ok:,} answered 200"
        + (f", errors: {result.error_text()}" if transport else ", no errors"),
        f"inbox (SQL, all statuses) grew by {stored:,} during the measured load and by "
        f"{stored_all:,} over warm-up + load, for {ok:,} and {ok_all:,} 200s (up to "
        f"{2 * slack} more: in flight when wrk stopped): "
        + ("consistent" if match and match_all else "MISMATCH"),
        "GET /v1/webhook-events?status=received lists them" if listed
        else f"GET /v1/webhook-events answered {listing.status_code}",
        f"queued for workers during the load: +{d.get('queued', 0):,.0f} messages",
        "WRAPPED: the prepared set was too small, ids repeated" if wrapped else "",
        result.cpu_text(),
        f"≈{d.get('xact_commit', 0) / requests:.2f} commits per request",
        f"p50 {result.p50_ms:.0f} ms, p90 {result.p90_ms:.0f} ms, max {result.max_ms:.0f} ms",
    ]
    return [
        Line("webhook_ingest: req/s (signed sandbox events), 64 conns", result.rps, "req/s",
             reference=ref.rps, reference_label="Litestar POST", target=Target(">=", 0.30),
             valid=valid, note="; ".join(x for x in evidence if x)),
        Line("webhook_ingest: p99", result.p99_ms, "ms", reference=ref.p99_ms,
             reference_label="Litestar POST p99", target=Target("<=", 2.0), valid=valid),
    ]
